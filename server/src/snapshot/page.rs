//! `index.html`: the public dashboard. Static HTML and CSS, no script: the plots are SVG files
//! beside it, the numbers come from `metrics.json`, every link is relative, so the folder can be
//! served by any web server or opened from disk.

use super::metrics::Metrics;
use super::plots::PLOTS;

/// One exported adapter, as the page lists it.
pub struct ExportLink {
    /// The skill.
    pub skill: String,
    /// Its version.
    pub version: u64,
    /// The folder, relative to the page.
    pub dir: String,
}

/// Escapes text for HTML (reasons and names may carry what a volunteer sent).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page for `metrics` and `exports`.
pub fn render(metrics: &Metrics, exports: &[ExportLink], generated: &str) -> String {
    let mut skills = String::new();
    for s in &metrics.skills {
        let reward = s.versions.last().map_or(f64::NAN, |v| v.reward);
        let first = s.versions.first().map_or(f64::NAN, |v| v.reward);
        skills.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{reward:.6}</td><td>{first:.6}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>\n",
            esc(&s.skill),
            s.current_version,
            s.accepted,
            s.rejected,
            s.errors,
            s.credit
        ));
    }
    let mut nights = String::new();
    for n in &metrics.nights {
        let reasons: Vec<String> = n
            .rejected
            .iter()
            .map(|(class, count)| format!("{} × {count}", esc(class)))
            .collect();
        nights.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td></tr>\n",
            esc(&n.night),
            n.accepted,
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join(", ")
            },
            n.errors,
            n.active_hosts,
            n.credit
        ));
    }
    let mut plots = String::new();
    for (file, title) in PLOTS {
        plots.push_str(&format!(
            "<figure><img src=\"plots/{file}\" alt=\"{title}\" width=\"720\" height=\"360\"><figcaption>{title}</figcaption></figure>\n"
        ));
    }
    let mut adapters = String::new();
    for e in exports {
        let dir = esc(&e.dir);
        adapters.push_str(&format!(
            "<li>{} v{}: <a href=\"{dir}/adapter_config.json\">adapter_config.json</a>, \
             <a href=\"{dir}/adapter_model.safetensors\">adapter_model.safetensors</a>, \
             <a href=\"{dir}/reference.json\">reference logits</a></li>\n",
            esc(&e.skill),
            e.version
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agiNet: federated fine-tuning</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ margin: 1.5em 0; }}
figcaption {{ color: #555; }}
</style>
</head>
<body>
<h1>agiNet</h1>
<p>Volunteers fine-tune LoRA adapters; the server validates each result on data volunteers never
see and aggregates the accepted ones into the next global version. Snapshot taken {generated}.</p>
<h2>Skills</h2>
<table>
<tr><th>skill</th><th>version</th><th>held-out reward</th><th>at version 0</th><th>accepted</th><th>rejected</th><th>errors</th><th>credit</th></tr>
{skills}</table>
<h2>Nights</h2>
<table>
<tr><th>night (UTC)</th><th>accepted</th><th>rejected, by reason</th><th>errors</th><th>active hosts</th><th>credit</th></tr>
{nights}</table>
{plots}<h2>Adapters</h2>
<p>Each skill's current global adapter in PEFT's format, for the base named in its
<code>adapter_config.json</code>.</p>
<ul>
{adapters}</ul>
<h2>Data and checksums</h2>
<p><a href="metrics.json">metrics.json</a> holds every number on this page.
<a href="SHA256SUMS">SHA256SUMS</a> lists every file's sha256; <a href="SHA256SUMS.sig">SHA256SUMS.sig</a>
is its ed25519 signature (hex) by the project key, <a href="project_key.pub">project_key.pub</a>.</p>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<img src=x onerror='a&b'>"),
            "&lt;img src=x onerror=&#39;a&amp;b&#39;&gt;"
        );
    }
}
