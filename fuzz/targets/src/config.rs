//! Any bytes as a work unit's `config`: a configuration or a message, never a panic.

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(config) = aginet::format::config::WorkConfig::parse(data) {
        // What the app derives from it next: the adapted sites and the family.
        let _ = config.architecture.sites(&config.lora.targets);
        let _ = config.architecture.family();
        let _ = config.architecture.n_vocab();
    }
}
