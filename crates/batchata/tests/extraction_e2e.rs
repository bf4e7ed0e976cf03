//! End to end through the emulator over loopback HTTP: a PDF invoice and a
//! plain-text contract, each with citations and a typed schema, go through
//! the Anthropic provider (create, poll, stream results) and come back as
//! `parsed::<T>()` values with a citation mapping for every field whose
//! value is in the document — on the right page for the PDF, at the right
//! characters for the text. A second run goes through `Batch::run` and reads
//! the same back from the result files on disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchata::providers::{
    create_provider, BatchRequest, ProviderConfig, ProviderSettings, ResultsContext,
};
use batchata::result::Confidence;
use batchata::{Batch, Catalog, Citation, Job, JobResult, ProviderKind};
use batchata_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use schemars::JsonSchema;
use serde::Deserialize;

const MODEL: &str = "claude-sonnet-4-5";

/// The invoice, across two PDF pages.
const PAGE_1: &str = "ACME Industrial Supplies Ltd\n\
42 Harbour Road\n\
Invoice number: INV-2024-0042\n\
Invoice date: 2024-03-15\n\
Vendor name: ACME Industrial Supplies Ltd\n\
City: Leeds";
const PAGE_2: &str = "Subtotal: $1,610.00\n\
VAT rate: 20%\n\
Total: $1,932.00\n\
Payment terms: Net 30 days";

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Invoice {
    invoice_number: String,
    invoice_date: String,
    vendor: Vendor,
    subtotal: f64,
    vat_rate: f64,
    total: f64,
    payment_terms: String,
    /// Not in the document: nothing can cite it.
    purchase_order: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Vendor {
    name: String,
    city: String,
}

const CONTRACT: &str = "SERVICE AGREEMENT\n\
Provider: Globex Corporation\n\
Client: Initech LLC\n\
Effective date: 1 July 2023\n\
Term: 24 months\n\
Monthly fee: EUR 4,500.00\n\
Governing law: New York\n\
Either party may end this agreement with sixty days of written notice.\n";

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Contract {
    provider: String,
    client: String,
    effective_date: String,
    term: u32,
    monthly_fee: f64,
    governing_law: String,
}

fn write_documents(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let pdf = dir.join("invoice-0042.pdf");
    std::fs::write(&pdf, batchata::fixtures::pdf(&[PAGE_1, PAGE_2]).unwrap()).unwrap();
    let txt = dir.join("contract.txt");
    std::fs::write(&txt, CONTRACT).unwrap();
    (pdf, txt)
}

fn jobs(pdf: &Path, txt: &Path) -> Vec<Job> {
    vec![
        Job::file(pdf, "Extract the invoice fields.")
            .id("invoice-0042")
            .schema::<Invoice>()
            .citations(true),
        Job::file(txt, "Extract the contract terms.")
            .id("contract-7")
            .schema::<Contract>()
            .citations(true),
    ]
}

/// Jobs with defaults merged, as the engine gets them.
fn prepared(dir: &Path, jobs: Vec<Job>) -> Vec<Job> {
    let mut batch = Batch::new(dir.join("results"))
        .default_params(batchata::DefaultParams::new().model(MODEL).max_tokens(2000));
    for j in jobs {
        batch.add_job(j).unwrap();
    }
    batch.jobs().to_vec()
}

async fn emulator() -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default()).await.unwrap()
}

fn config(h: &EmulatorHandle) -> ProviderConfig {
    ProviderConfig::default()
        .api_key("test")
        .base_url(h.anthropic_base_url())
        .poll_interval(Duration::from_millis(30))
}

/// The page (1-based) of the invoice PDF that holds `text`.
fn page_of(text: &str) -> Option<u32> {
    [PAGE_1, PAGE_2]
        .iter()
        .position(|p| p.contains(text))
        .map(|i| i as u32 + 1)
}

/// A passage shows the same confidence in `citations` as in
/// `citation_mappings`: the best it got for any field, and none for a
/// passage that backs no field.
fn check_confidences_agree(r: &JobResult) {
    let all = r.citations.as_ref().expect("citations");
    let mapped: Vec<&Citation> = r
        .citation_mappings
        .iter()
        .flatten()
        .flat_map(|(_, c)| c)
        .collect();
    assert!(!mapped.is_empty());
    let same =
        |a: &Citation, b: &Citation| a.text == b.text && a.source == b.source && a.page == b.page;
    for c in all {
        let best = mapped
            .iter()
            .filter(|m| same(m, c))
            .filter_map(|m| m.confidence)
            .max();
        assert_eq!(c.confidence, best, "{c:#?}");
        assert_eq!(c.match_reason, None, "reasons are per field: {c:#?}");
    }
    for m in &mapped {
        assert!(
            all.iter().any(|c| same(c, m)),
            "{m:#?} is not among the citations"
        );
    }
    assert!(all.iter().any(|c| c.confidence == Some(Confidence::High)));
}

fn check_invoice(r: &JobResult) {
    assert!(r.is_success(), "{:?}", r.error);
    assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
    let inv: Invoice = r.parsed().unwrap();
    assert_eq!(inv.invoice_number, "INV-2024-0042");
    assert_eq!(inv.invoice_date, "2024-03-15");
    assert_eq!(inv.vendor.name, "ACME Industrial Supplies Ltd");
    assert_eq!(inv.vendor.city, "Leeds");
    assert_eq!(inv.total, 1932.0);
    assert_eq!(inv.subtotal, 1610.0);
    assert_eq!(inv.vat_rate, 20.0);
    assert_eq!(inv.payment_terms, "Net 30 days");

    let m: &BTreeMap<String, Vec<Citation>> = r.citation_mappings.as_ref().unwrap();
    // Every field whose value is in the document, with the page it is on.
    let expect = [
        ("invoice_number", "INV-2024-0042"),
        ("invoice_date", "2024-03-15"),
        ("vendor.name", "Vendor name: ACME"),
        ("vendor.city", "Leeds"),
        ("subtotal", "$1,610.00"),
        ("vat_rate", "20%"),
        ("total", "Total: $1,932.00"),
        ("payment_terms", "Net 30 days"),
    ];
    for (path, written) in expect {
        let cits = m
            .get(path)
            .unwrap_or_else(|| panic!("{path} not mapped: {m:#?}"));
        let want_page = page_of(written).unwrap();
        assert_eq!(cits[0].page, Some(want_page), "{path}: {cits:#?}");
        let meta = cits[0].metadata.as_ref().unwrap();
        assert_eq!(meta["type"], "page_location");
        assert_eq!(meta["start_page_number"], want_page);
        assert_eq!(cits[0].source, "invoice-0042.pdf");
        assert_eq!(
            cits[0].confidence,
            Some(Confidence::High),
            "{path}: {cits:#?}"
        );
        assert!(cits[0].match_reason.is_some());
        // The cited passage really is on that page.
        let page_text = [PAGE_1, PAGE_2][want_page as usize - 1];
        assert!(
            page_text.contains(cits[0].text.trim()),
            "{path}: {:?} not on page {want_page}",
            cits[0].text
        );
    }
    assert!(!m.contains_key("purchase_order"), "{m:#?}");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    check_confidences_agree(r);
}

fn check_contract(r: &JobResult) {
    assert!(r.is_success(), "{:?}", r.error);
    assert!(r.validation_errors.is_empty(), "{:?}", r.validation_errors);
    let c: Contract = r.parsed().unwrap();
    assert_eq!(c.provider, "Globex Corporation");
    assert_eq!(c.client, "Initech LLC");
    assert_eq!(c.term, 24);
    assert_eq!(c.monthly_fee, 4500.0);
    let m = r.citation_mappings.as_ref().unwrap();
    let chars: Vec<char> = CONTRACT.chars().collect();
    for path in [
        "provider",
        "client",
        "effective_date",
        "term",
        "monthly_fee",
        "governing_law",
    ] {
        let cits = m
            .get(path)
            .unwrap_or_else(|| panic!("{path} not mapped: {m:#?}"));
        let meta = cits[0].metadata.as_ref().unwrap();
        assert_eq!(meta["type"], "char_location", "{path}");
        let s = meta["start_char_index"].as_u64().unwrap() as usize;
        let e = meta["end_char_index"].as_u64().unwrap() as usize;
        let slice: String = chars[s..e].iter().collect();
        assert_eq!(slice, cits[0].text, "{path}: range and cited text agree");
        assert_eq!(cits[0].page, None);
        assert_eq!(
            cits[0].confidence,
            Some(Confidence::High),
            "{path}: {cits:#?}"
        );
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    check_confidences_agree(r);
}

#[tokio::test]
async fn pdf_and_text_extraction_through_the_anthropic_provider() {
    let h = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (pdf, txt) = write_documents(dir.path());
    let jobs = prepared(dir.path(), jobs(&pdf, &txt));
    let provider = create_provider(
        ProviderKind::Anthropic,
        &config(&h),
        Arc::new(Catalog::builtin().clone()),
    )
    .unwrap();
    let created = provider
        .create_batch(BatchRequest {
            jobs: &jobs,
            run_id: "e2e",
            batch_index: 0,
            raw_dir: None,
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = provider.get_batch_status(&created.batch_id).await.unwrap();
        if st.state.is_terminal() {
            break;
        }
        assert!(Instant::now() < deadline, "batch never ended");
        tokio::time::sleep(provider.polling_interval()).await;
    }
    let mut results: BTreeMap<String, JobResult> = BTreeMap::new();
    let mut sink = |r: JobResult| -> batchata::Result<()> {
        results.insert(r.job_id.clone(), r);
        Ok(())
    };
    provider
        .get_batch_results(
            &created.batch_id,
            ResultsContext {
                jobs: &jobs,
                raw_dir: None,
            },
            &mut sink,
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    check_invoice(&results["invoice-0042"]);
    check_contract(&results["contract-7"]);
}

#[tokio::test]
async fn extraction_through_batch_run_and_result_files() {
    let h = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (pdf, txt) = write_documents(dir.path());
    let results_dir = dir.path().join("results");
    let settings = ProviderSettings::default().anthropic(|_| config(&h));
    let mut batch = Batch::new(&results_dir)
        .default_params(batchata::DefaultParams::new().model(MODEL).max_tokens(2000))
        .providers(settings);
    for j in jobs(&pdf, &txt) {
        batch.add_job(j).unwrap();
    }
    let run = batch.run().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("run finished")
        .unwrap();
    assert!(status.is_complete, "{status:?}");
    assert_eq!(status.completed, 2, "{status:?}");
    let invoice = JobResult::load_from_json(results_dir.join("invoice-0042.json")).unwrap();
    check_invoice(&invoice);
    // In the file itself: the passage backing `total` reads "high" in both
    // lists, as the lowercase strings Python batchata's from_dict reads.
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results_dir.join("invoice-0042.json")).unwrap(),
    )
    .unwrap();
    let total = &raw["citation_mappings"]["total"][0];
    assert_eq!(total["confidence"], "high", "{total:#}");
    let listed: Vec<&serde_json::Value> = raw["citations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["text"] == total["text"] && c["page"] == total["page"])
        .collect();
    assert!(!listed.is_empty(), "{raw:#}");
    assert!(
        listed.iter().all(|c| c["confidence"] == "high"),
        "{listed:#?}"
    );
    let contract = JobResult::load_from_json(results_dir.join("contract-7.json")).unwrap();
    check_contract(&contract);
}
