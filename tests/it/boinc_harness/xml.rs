//! Minimal reading of the flat XML that the BOINC client writes (no attributes, no nesting of
//! the same tag).

/// The `<tag>...</tag>` elements of `xml`, in order.
pub(super) fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let Some(j) = rest[i..].find(&close) else {
            break;
        };
        out.push(&rest[i..i + j + close.len()]);
        rest = &rest[i + j + close.len()..];
    }
    out
}

/// The text inside the first `<tag>...</tag>` of `xml`.
pub(super) fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let block = *xml_blocks(xml, tag).first()?;
    Some(&block[tag.len() + 2..block.len() - tag.len() - 3])
}
