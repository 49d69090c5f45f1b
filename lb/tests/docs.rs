//! Every TOML example in the warren-lb docs is a configuration warren-lb
//! accepts, so the reference cannot drift from the config types: a renamed
//! or removed key fails here (unknown keys are refused).  A fragment (one
//! table, as the docs show it) is checked appended to a minimal config.
//! The files an example names (TLS certificates) exist on a deployment
//! only, so they are not opened (`parse_text_only`).

use std::path::Path;

use warren_testkit::toml_examples;

const DOCS: &[&str] = &["configuration.md", "lb-operations.md", "tls.md"];

/// A frontend, a backend and a server; fragments are appended after it, so
/// a `[[backend.server]]` or `[backend.check]` fragment lands in this
/// backend.
const BASE: &str = r#"
[[frontend]]
name = "docs-base"
bind = "127.0.0.1:5672"
backend = "rabbitmq"

[[backend]]
name = "rabbitmq"

[[backend.server]]
name = "docs-base"
address = "127.0.0.1:5672"
"#;

#[test]
fn every_toml_example_in_the_docs_is_accepted() {
    let mut checked = 0;
    for doc in DOCS {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        for (line, block) in toml_examples(&text) {
            let whole = block.contains("[[frontend]]") && block.contains("[[backend]]");
            let config = if whole {
                block.clone()
            } else {
                format!("{BASE}\n{block}")
            };
            if let Err(problems) = warren_lb::config::parse_text_only(&config) {
                panic!("docs/{doc}:{line}: the example is refused: {problems:#?}\n{block}");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 7,
        "only {checked} examples found: did the docs move?"
    );
}
