//! What each provider accepts in a single request (size, PDF pages, image
//! size and sides), with the source of every number.

use super::MIB;
use crate::catalog::ProviderKind;

/// What one provider accepts in a single request.
///
/// Each value names its source; where the provider reference
/// (`provider-apis.md`) does not give a number, the comment says where it
/// comes from, and a limit no source gives is not checked (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bytes of one request as sent (JSON, files base64-encoded).
    pub max_request_bytes: u64,
    /// Pages of one PDF.
    pub max_pdf_pages: Option<usize>,
    /// Bytes of one image, base64-encoded.
    pub max_image_bytes: Option<u64>,
    /// Pixels along either side of an image.
    pub max_image_side: Option<u32>,
}

/// The per-request limits of a provider.
pub fn request_limits(provider: ProviderKind) -> RequestLimits {
    match provider {
        // Request size: 32 MB, the Messages API's limit (reference §2.10,
        // `413 request_too_large`; each request of a batch is a Messages
        // request), also the PDF guide's "maximum request size". Read as
        // 32 MiB, the larger reading, so no request that fits is refused.
        // Pages: 100 per request (Anthropic PDF support guide; not in the
        // reference. The current guide allows 600 only for models with a
        // window of 1M tokens, none of the catalog's). Images: at most
        // 8000 x 8000 px (Anthropic vision guide); 5 MB base64-encoded per
        // image (the API's "image exceeds 5 MB maximum" error) is
        // UNCONFIRMED: neither number is in the reference.
        ProviderKind::Anthropic => RequestLimits {
            max_request_bytes: 32 * MIB,
            max_pdf_pages: Some(100),
            max_image_bytes: Some(5 * MIB),
            max_image_side: Some(8000),
        },
        // A request is one line of the batch input file, which holds at
        // most 200 MB (reference §3.4, §6). The reference gives no limit
        // for one PDF or image input; none is checked.
        ProviderKind::OpenAi => RequestLimits {
            max_request_bytes: 200_000_000,
            max_pdf_pages: None,
            max_image_bytes: None,
            max_image_side: None,
        },
        // Inline batch requests total under 20 MB (reference §4.3).
        ProviderKind::Gemini => RequestLimits {
            max_request_bytes: 20_000_000,
            max_pdf_pages: None,
            max_image_bytes: None,
            max_image_side: None,
        },
    }
}
