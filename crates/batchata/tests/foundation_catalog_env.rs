//! The `BATCHATA_MODELS_FILE` environment variable, in a test binary of its
//! own with a single test: setting a process-wide variable must not race any
//! other test that builds a `Batch`.

use batchata::catalog::{Catalog, MODELS_FILE_ENV};
use batchata::{Batch, Error, Job};
use serde_json::json;

#[test]
fn models_file_from_the_environment() {
    assert_eq!(MODELS_FILE_ENV, "BATCHATA_MODELS_FILE");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-models.json");
    let mut mini =
        serde_json::to_value(&*Catalog::builtin().lookup("gpt-4o-mini").unwrap()).unwrap();
    mini["max_output_tokens"] = json!(256);
    let mut custom = mini.clone();
    custom["name"] = json!("acme-chat-1");
    custom["aliases"] = json!([]);
    custom["input_price"] = json!(0.5);
    std::fs::write(
        &path,
        serde_json::to_vec(&json!({ "models": [mini, custom] })).unwrap(),
    )
    .unwrap();

    // This binary has one test, so no other thread reads the environment.
    std::env::set_var(MODELS_FILE_ENV, &path);
    let c = Catalog::load_default().unwrap();
    assert_eq!(c.lookup("acme-chat-1").unwrap().input_price, 0.5);
    assert_eq!(c.lookup("gpt-4o-mini").unwrap().max_output_tokens, 256);
    assert_eq!(
        c.lookup("gpt-4o-mini-2024-07-18")
            .unwrap()
            .max_output_tokens,
        256
    );
    let mut b = Batch::new("unused");
    b.add_job(Job::prompt("Hi").model("acme-chat-1").max_tokens(200))
        .unwrap();
    let e = b
        .add_job(Job::prompt("Hi").model("gpt-4o-mini").max_tokens(257))
        .unwrap_err()
        .to_string();
    assert!(e.contains("256"), "{e}");
    // The builder's own file is merged on top of the environment's.
    let second = dir.path().join("second.json");
    let mut again = custom.clone();
    again["input_price"] = json!(0.25);
    std::fs::write(
        &second,
        serde_json::to_vec(&json!({ "models": [again] })).unwrap(),
    )
    .unwrap();
    let b = Batch::new("unused").models_file(&second);
    assert_eq!(b.catalog().lookup("acme-chat-1").unwrap().input_price, 0.25);
    assert_eq!(
        b.catalog().lookup("gpt-4o-mini").unwrap().max_output_tokens,
        256
    );

    // A file that cannot be read: load_default says so; a Batch says so at
    // add_job, naming the variable and the path.
    let missing = dir.path().join("gone.json");
    std::env::set_var(MODELS_FILE_ENV, &missing);
    let e = Catalog::load_default().unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    let mut b = Batch::new("unused");
    let e = b
        .add_job(Job::prompt("Hi").model("gpt-4o-mini"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("BATCHATA_MODELS_FILE") && e.contains("gone.json"),
        "{e}"
    );
    // A models file given to the builder replaces the broken one.
    let mut b = Batch::new("unused").models_file(&path);
    b.add_job(Job::prompt("Hi").model("acme-chat-1").max_tokens(100))
        .unwrap();

    // Unset: the built-in catalog again.
    std::env::remove_var(MODELS_FILE_ENV);
    let c = Catalog::load_default().unwrap();
    assert!(c.get("acme-chat-1").is_none());
    assert_eq!(c.lookup("gpt-4o-mini").unwrap().max_output_tokens, 16_384);
    Batch::new("unused")
        .add_job(Job::prompt("Hi").model("gpt-4o-mini").max_tokens(257))
        .unwrap();
}
