//! Writes the quick-start's sample documents (`examples/files/`): a two-page
//! invoice PDF and a short contract in text. They are committed; run this to
//! make them again: `cargo run -p batchata --example make_quickstart_files`.

fn main() -> batchata::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/files");
    std::fs::create_dir_all(&dir).map_err(|e| batchata::Error::io("create", &dir, e))?;
    let pdf = batchata::fixtures::pdf(&[
        "ACME Supplies Ltd., 4 Harbour Road, Leith, Edinburgh EH6 6QR\nInvoice number: INV-2041\nDate: 2026-03-14\nBill to: Northwind Traders, accounts payable department\nThank you for your order; goods were shipped on 2026-03-10.",
        "Line items: 12 boxes of A4 printer paper at 95.00 each, delivery 94.50\nTotal: 1234.50\nPayment is due within 30 days of the invoice date.\nBank transfer to ACME Supplies Ltd., reference INV-2041.",
    ])?;
    let path = dir.join("invoice.pdf");
    std::fs::write(&path, pdf).map_err(|e| batchata::Error::io("write", &path, e))?;
    let text = "Service agreement between Northwind Traders and Contoso.\n\
Party: Northwind Traders\nTerm: 24 months, starting 2026-01-01.\n\
Either party may end the agreement with 60 days notice.\n";
    let path = dir.join("contract.txt");
    std::fs::write(&path, text).map_err(|e| batchata::Error::io("write", &path, e))?;
    println!("wrote {}", dir.display());
    Ok(())
}
