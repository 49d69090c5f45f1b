//! Every TOML example in docs/vip.md is a configuration warren-vip accepts,
//! so the reference cannot drift from the config types: a renamed or
//! removed key fails here (unknown keys are refused), and so does an
//! example that validation would refuse.

use std::path::Path;

use warren_testkit::toml_examples;

#[test]
fn every_toml_example_in_the_vip_docs_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vip.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let examples = toml_examples(&text);
    for (line, example) in &examples {
        if let Err(problems) = warren_vip::config::parse(example) {
            panic!("docs/vip.md:{line}: the example is refused: {problems:#?}\n{example}");
        }
    }
    assert!(
        !examples.is_empty(),
        "no ```toml example found in docs/vip.md: did the reference move?"
    );
}
