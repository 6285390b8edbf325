//! The XML files an operator copies into a BOINC project (`wu/`, `tests/boinc-project/`) are
//! well-formed: BOINC's PHP tools (`update_versions` reads `version.xml` with simplexml) skip a
//! file they cannot parse with a warning and nothing else, so a stray `--` in a comment once
//! left a project with no app version and its volunteers with "reached a limit on tasks in
//! progress".

use std::path::Path;

/// Every `.xml` file of `folder`, by name.
fn xml_files(folder: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    files
}

#[test]
fn boinc_templates_and_app_versions_are_well_formed_xml() {
    let files: Vec<_> = ["wu", "tests/boinc-project"]
        .iter()
        .flat_map(|f| xml_files(f))
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("wu/version-static.xml")),
        "the static app version is among them: {files:?}"
    );
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            // BOINC's templates are fragments (several top-level elements): parse them inside
            // one root, as BOINC's own parser reads them.
            let text = if text.starts_with("<?xml") {
                text
            } else {
                format!("<fragment>{text}</fragment>")
            };
            roxmltree::Document::parse(&text)
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(bad.is_empty(), "not well-formed XML:\n{}", bad.join("\n"));
}

#[test]
fn a_double_hyphen_in_a_comment_is_caught() {
    let text = "<version><!-- built by ci/build-static.sh --ffi --></version>";
    assert!(roxmltree::Document::parse(text).is_err());
}
