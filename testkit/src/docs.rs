//! The documented configuration examples, for the tests that keep each
//! program's docs accepted by its parser (lb/tests/docs.rs,
//! vip-agent/tests/docs.rs). Test-only, so it lives here rather than in a
//! program's public API.

/// The ```` ```toml ```` blocks of a Markdown document, each with the line
/// its fence is on, for the tests that keep each program's documented
/// examples accepted by its parser.
pub fn toml_examples(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some((i + 1, String::new())),
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some((_, block)), _) => {
                block.push_str(line.trim_start());
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}
