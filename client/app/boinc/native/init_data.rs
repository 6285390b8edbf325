//! `init_data.xml`, the file the client writes into the slot before starting the app: the
//! fields the native backend needs, read with a real XML parser so that nested elements
//! (project preferences, host info) are skipped rather than searched.

use std::path::Path;

/// The file's name in the slot (BOINC's `INIT_DATA_FILE`).
pub const INIT_DATA_FILE: &str = "init_data.xml";

/// Checkpoint period when the file gives none, and in standalone mode (seconds).
pub const DEFAULT_CHECKPOINT_PERIOD: f64 = 300.0;

/// What the app reads from `init_data.xml`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientInitData {
    /// CPUs the client gives the task.
    pub ncpus: f64,
    /// Least seconds between checkpoints (the volunteer's `disk_interval`).
    pub checkpoint_period: f64,
    /// Work unit name.
    pub wu_name: String,
    /// Result name.
    pub result_name: String,
    /// Where this task's progress starts and ends on the client's scale.
    pub fraction_done_start: f64,
    /// See `fraction_done_start`.
    pub fraction_done_end: f64,
    /// Shared memory key: -1 means the `boinc_mmap_file` in the slot.
    pub shm_key: i64,
    /// The client's process id (0: unknown; then only heartbeats tell the client is alive).
    pub client_pid: u32,
    /// CPU seconds the task used in earlier runs.
    pub wu_cpu_time: f64,
    /// The GPU the client assigned (-1: none).
    pub gpu_device_num: i32,
}

impl Default for ClientInitData {
    fn default() -> Self {
        Self {
            ncpus: 0.0,
            checkpoint_period: DEFAULT_CHECKPOINT_PERIOD,
            wu_name: String::new(),
            result_name: String::new(),
            fraction_done_start: 0.0,
            fraction_done_end: 1.0,
            shm_key: 0,
            client_pid: 0,
            wu_cpu_time: 0.0,
            gpu_device_num: -1,
        }
    }
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InitDataError {
    /// Not well-formed XML.
    #[error("{path}: not well-formed XML: {reason}")]
    Xml {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// The root element is not `<app_init_data>`.
    #[error("{path}: the root element is <{found}>, not <app_init_data>")]
    Root {
        /// The file.
        path: String,
        /// The root element found.
        found: String,
    },
    /// A field holds text that is not a number.
    #[error("{path}: <{tag}> holds {text:?}, not a number")]
    Number {
        /// The file.
        path: String,
        /// The element.
        tag: String,
        /// Its text.
        text: String,
    },
}

/// Parses the text of `init_data.xml` (`path` names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<ClientInitData, InitDataError> {
    let name = || path.display().to_string();
    let doc = roxmltree::Document::parse(text).map_err(|e| InitDataError::Xml {
        path: name(),
        reason: e.to_string(),
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "app_init_data" {
        return Err(InitDataError::Root {
            path: name(),
            found: root.tag_name().name().to_string(),
        });
    }
    let mut data = ClientInitData::default();
    for child in root.children().filter(|n| n.is_element()) {
        let tag = child.tag_name().name();
        let text = child.text().unwrap_or("").trim();
        let number = || {
            text.parse::<f64>().map_err(|_| InitDataError::Number {
                path: name(),
                tag: tag.to_string(),
                text: text.to_string(),
            })
        };
        match tag {
            "ncpus" => data.ncpus = number()?,
            "checkpoint_period" => data.checkpoint_period = number()?,
            "wu_name" => data.wu_name = text.to_string(),
            "result_name" => data.result_name = text.to_string(),
            "fraction_done_start" => data.fraction_done_start = number()?,
            "fraction_done_end" => data.fraction_done_end = number()?,
            "shm_key" => data.shm_key = number()? as i64,
            "client_pid" => data.client_pid = number()?.max(0.0) as u32,
            "wu_cpu_time" => data.wu_cpu_time = number()?,
            "gpu_device_num" => data.gpu_device_num = number()? as i32,
            _ => {}
        }
    }
    if data.checkpoint_period <= 0.0 {
        data.checkpoint_period = DEFAULT_CHECKPOINT_PERIOD;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_WRITTEN: &str = "<app_init_data>
<major_version>7</major_version>
<app_name>aginet</app_name>
<project_preferences>
<ncpus>99</ncpus><anything attr=\"1\">text &amp; more</anything>
</project_preferences>
<wu_name>wu_7</wu_name>
<result_name>wu_7_0</result_name>
<shm_key>-1</shm_key>
<client_pid>4242</client_pid>
<slot>3</slot>
<wu_cpu_time>12.500000</wu_cpu_time>
<ncpus>2.000000</ncpus>
<checkpoint_period>60.000000</checkpoint_period>
<fraction_done_start>0.000000</fraction_done_start>
<fraction_done_end>1.000000</fraction_done_end>
<gpu_type>NVIDIA</gpu_type>
<gpu_device_num>1</gpu_device_num>
<host_info><p_ncpus>16</p_ncpus></host_info>
</app_init_data>
";

    #[test]
    fn the_client_s_fields_are_read_and_nested_ones_skipped() {
        let d = parse(CLIENT_WRITTEN, Path::new("init_data.xml")).unwrap();
        assert_eq!(
            d.ncpus, 2.0,
            "the project preferences' <ncpus> is not the task's"
        );
        assert_eq!(d.checkpoint_period, 60.0);
        assert_eq!(d.wu_name, "wu_7");
        assert_eq!(d.result_name, "wu_7_0");
        assert_eq!(d.shm_key, -1);
        assert_eq!(d.client_pid, 4242);
        assert_eq!(d.wu_cpu_time, 12.5);
        assert_eq!((d.fraction_done_start, d.fraction_done_end), (0.0, 1.0));
        assert_eq!(d.gpu_device_num, 1);
    }

    #[test]
    fn missing_fields_take_the_library_s_defaults() {
        let d = parse("<app_init_data></app_init_data>", Path::new("i.xml")).unwrap();
        assert_eq!(d, ClientInitData::default());
        assert_eq!(d.checkpoint_period, DEFAULT_CHECKPOINT_PERIOD);
        assert_eq!(d.gpu_device_num, -1, "no GPU unless the client assigns one");
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_and_the_problem() {
        let p = Path::new("slot/init_data.xml");
        let cases = [
            ("<app_init_data><ncpus>2</app_init_data>", "not well-formed"),
            ("<other/>", "<other>"),
            (
                "<app_init_data><ncpus>two</ncpus></app_init_data>",
                "<ncpus> holds \"two\"",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, p).unwrap_err().to_string();
            assert!(e.contains("slot/init_data.xml") && e.contains(want), "{e}");
        }
    }
}
