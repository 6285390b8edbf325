//! Which server optimizer a skill aggregates with: the command line's where it names one, else
//! the skill manifest's `[server]` table (each skill's best setting in the learning benchmark,
//! `docs/learning.md`), else FedAvg at η 1.

use super::Strategy;
use aginet::format::manifest::Manifest;
use anyhow::{bail, Result};
use clap::ValueEnum;
use std::path::Path;

/// A strategy and its server learning rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The server optimizer.
    pub strategy: Strategy,
    /// Its learning rate η (`None`: the strategy's own default).
    pub server_lr: Option<f32>,
}

impl Choice {
    /// The choice for the skill whose manifest, read from `path`, is `manifest`. A `strategy`
    /// from the command line replaces the manifest's (and its η); a `server_lr` replaces any η.
    /// Fails, naming `path`, on a `[server]` table this server cannot use, even when the
    /// command line overrides it, so that a typo never waits for the night it matters.
    pub fn resolve(
        manifest: &Manifest,
        path: &Path,
        strategy: Option<Strategy>,
        server_lr: Option<f32>,
    ) -> Result<Self> {
        let own = match &manifest.server {
            None => None,
            Some(server) => {
                let Ok(s) = Strategy::from_str(&server.strategy, false) else {
                    let names: Vec<String> = Strategy::value_variants()
                        .iter()
                        .filter_map(|v| v.to_possible_value())
                        .map(|v| v.get_name().to_string())
                        .collect();
                    bail!(
                        "{}: [server] strategy {:?} is not one of {}",
                        path.display(),
                        server.strategy,
                        names.join(", ")
                    );
                };
                check_lr(
                    server.server_lr,
                    &format!("{}: [server] server_lr", path.display()),
                )?;
                Some(Self {
                    strategy: s,
                    server_lr: server.server_lr,
                })
            }
        };
        check_lr(server_lr, "--server-lr")?;
        let base = match (strategy, own) {
            (Some(strategy), _) => Self {
                strategy,
                server_lr: None,
            },
            (None, Some(own)) => own,
            (None, None) => Self {
                strategy: Strategy::Fedavg,
                server_lr: None,
            },
        };
        Ok(Self {
            server_lr: server_lr.or(base.server_lr),
            ..base
        })
    }
}

impl std::fmt::Display for Choice {
    /// `diloco at η 1.5`, or `fedavg at its default η`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.strategy.to_possible_value().map_or_else(
            || format!("{:?}", self.strategy),
            |v| v.get_name().to_string(),
        );
        match self.server_lr {
            Some(lr) => write!(f, "{name} at η {lr}"),
            None => write!(f, "{name} at its default η"),
        }
    }
}

/// Fails unless `lr` is absent or a positive finite number.
fn check_lr(lr: Option<f32>, what: &str) -> Result<()> {
    match lr {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            bail!("{what} is {v}; it must be a positive number")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aginet::format::manifest::ServerDefaults;

    fn manifest(server: Option<(&str, Option<f32>)>) -> Manifest {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let mut m = Manifest::load(&models, "tiny").unwrap();
        m.server = server.map(|(s, lr)| ServerDefaults {
            strategy: s.into(),
            server_lr: lr,
        });
        m
    }

    fn choice(strategy: Strategy, server_lr: Option<f32>) -> Choice {
        Choice {
            strategy,
            server_lr,
        }
    }

    #[test]
    fn the_command_line_then_the_manifest_then_fedavg() {
        let p = Path::new("skills/x/manifest.toml");
        let none = manifest(None);
        let diloco = manifest(Some(("diloco", Some(1.5))));
        let r = |m: &Manifest, s, lr| Choice::resolve(m, p, s, lr).unwrap();
        assert_eq!(r(&none, None, None), choice(Strategy::Fedavg, None));
        assert_eq!(
            r(&none, None, Some(2.0)),
            choice(Strategy::Fedavg, Some(2.0))
        );
        assert_eq!(r(&diloco, None, None), choice(Strategy::Diloco, Some(1.5)));
        assert_eq!(
            r(&diloco, None, Some(0.3)),
            choice(Strategy::Diloco, Some(0.3))
        );
        // Another strategy does not inherit the manifest's η.
        assert_eq!(
            r(&diloco, Some(Strategy::Fedavg), None),
            choice(Strategy::Fedavg, None)
        );
    }

    #[test]
    fn every_shipped_skill_names_a_strategy_this_server_has() {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let mut chosen = Vec::new();
        for skill in ["tiny", "vision", "memory", "language", "planner"] {
            let path = Manifest::path(&models, skill);
            let m = Manifest::read(&path).unwrap();
            chosen.push(Choice::resolve(&m, &path, None, None).unwrap().to_string());
        }
        // docs/learning.md's choices.
        assert_eq!(
            chosen,
            [
                "fedavg at its default η",
                "diloco at its default η",
                "diloco at η 1.5",
                "diloco at its default η",
                "fedavg at its default η"
            ]
        );
    }

    #[test]
    fn a_bad_server_table_is_refused_naming_the_file() {
        let p = Path::new("skills/x/manifest.toml");
        let typo = manifest(Some(("dilocco", None)));
        let e = Choice::resolve(&typo, p, Some(Strategy::Fedavg), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("skills/x/manifest.toml") && msg.contains("\"dilocco\""),
            "{msg}"
        );
        assert!(msg.contains("fedavg, fedavgm"), "{msg}");
        let zero = manifest(Some(("fedavg", Some(0.0))));
        let e = Choice::resolve(&zero, p, None, None).unwrap_err();
        assert!(e.to_string().contains("server_lr is 0"), "{e}");
        let e = Choice::resolve(&manifest(None), p, None, Some(f32::NAN)).unwrap_err();
        assert!(e.to_string().contains("--server-lr is NaN"), "{e}");
    }
}
