"""batchata 0.4.7's README examples, run against the emulator.

The examples are kept as batchata's README has them, with only these edits:
- ``from batchata import`` becomes ``from batchata_rs import`` (the switch);
- the multi-line method chains get the parentheses they need to be Python
  (the README leaves them out, so as written they are a SyntaxError);
- before Python 3.12, the f-strings that nest double quotes use single
  quotes inside (PEP 701 syntax);
- the Quick Start's ``files`` list is defined.
"""

import json
import sys
from pathlib import Path

from pydantic import BaseModel

QUICK_START = '''
from batchata_rs import Batch

# Simple batch processing
batch = (Batch(results_dir="./output")
    .set_default_params(model="claude-sonnet-4-20250514")  # or "gpt-4.1-2025-04-14" or "gemini-2.5-flash"
    .add_cost_limit(usd=5.0))

for file in files:
    batch.add_job(file=file, prompt="Summarize")

run = batch.run()

results = run.results()  # {"completed": [JobResult], "failed": [JobResult], "cancelled": [JobResult]}

# Or preview costs first with dry run
run = batch.run(dry_run=True)  # Shows cost estimates without executing
'''

COMPLETE_EXAMPLE = '''
from batchata_rs import Batch
from pydantic import BaseModel
from dotenv import load_dotenv

load_dotenv()  # Load API keys from .env

# Define structured output
class InvoiceAnalysis(BaseModel):
    invoice_number: str
    total_amount: float
    vendor: str
    payment_status: str

# Create batch configuration
batch = (Batch(
        results_dir="./invoice_results",
        max_parallel_batches=1,
        items_per_batch=3
    )
    .set_state(file="./invoice_state.json", reuse_state=False)
    .set_default_params(model="claude-sonnet-4-20250514", temperature=0.0)
    .add_cost_limit(usd=5.0)
    .add_time_limit(minutes=10)  # Time limit of 10 minutes
    .set_verbosity("warn") )

# Add jobs with structured output and citations
invoice_files = ["path/to/invoice1.pdf", "path/to/invoice2.pdf", "path/to/invoice3.pdf"]
for invoice_file in invoice_files:
    batch.add_job(
        file=invoice_file,
        prompt="Extract the invoice number, total amount, vendor name, and payment status.",
        response_model=InvoiceAnalysis,
        enable_citations=True
    )

# Execute with rich progress display
print("Starting batch processing...")
run = batch.run(print_status=True)

# Or use custom progress callback
run = batch.run(print_status=True)

# Get results
results = run.results()

# Process successful results
for result in results["completed"]:
    analysis = result.parsed_response
    citations = result.citation_mappings
    print(f"\\nInvoice: {analysis.invoice_number} (page: {citations.get("invoice_number").page})")
    print(f"  Vendor: {analysis.vendor} (page: {citations.get("vendor").page})")
    print(f"  Total: ${analysis.total_amount:.2f} (page: {citations.get("total_amount").page})")
    print(f"  Status: {analysis.payment_status} (page: {citations.get("payment_status").page})")
    
    # Save each result to JSON file
    result.save_to_json(f"./invoice_results/{result.job_id}.json")

# Process failed/cancelled results  
for result in results["failed"]:
    print(f"\\nJob {result.job_id} failed: {result.error}")

for result in results["cancelled"]:
    print(f"\\nJob {result.job_id} was cancelled: {result.error}")
'''


def _source(text: str) -> str:
    if sys.version_info < (3, 12):
        for field in ("invoice_number", "vendor", "total_amount", "payment_status"):
            text = text.replace(f'citations.get("{field}")', f"citations.get('{field}')")
    return text


def test_quick_start(workdir, invoices, capsys):
    ns = {"files": [str(p) for p in invoices]}
    exec(compile(_source(QUICK_START), "quick_start.py", "exec"), ns)

    results = ns["results"]
    assert set(results) == {"completed", "failed", "cancelled"}
    assert len(results["completed"]) == 3
    assert not results["failed"] and not results["cancelled"]
    for r in results["completed"]:
        assert r.is_success and r.raw_response
        assert r.input_tokens > 0 and r.output_tokens > 0 and r.cost_usd > 0
        assert (workdir / "output" / f"{r.job_id}.json").is_file()
    # The dry run printed a plan and ran nothing new.
    assert "$" in capsys.readouterr().out


def test_complete_example(workdir, invoices, no_dotenv, capsys):
    ns: dict = {}
    exec(compile(_source(COMPLETE_EXAMPLE), "complete_example.py", "exec"), ns)

    results = ns["results"]
    InvoiceAnalysis = ns["InvoiceAnalysis"]
    assert len(results["completed"]) == 3, results
    for r in results["completed"]:
        # A typed answer, validated by the user's own model.
        assert isinstance(r.parsed_response, InvoiceAnalysis)
        assert isinstance(r.parsed_response.total_amount, float)
        # Citations point at pages of the PDF sent.
        assert r.citations, r.raw_response
        assert all(c.page in (1, 2) for c in r.citations)
        # Files on disk: the result, which the example saved over, and raw files.
        saved = json.loads((workdir / "invoice_results" / f"{r.job_id}.json").read_text())
        assert saved["job_id"] == r.job_id
        assert saved["parsed_response"] == r.parsed_response.model_dump(mode="json")
    assert (workdir / "invoice_state.json").is_file()
    assert (workdir / "invoice_results" / "raw_files").is_dir()
    out = capsys.readouterr().out
    assert out.count("Invoice: ") == 3 and "(page: " in out
