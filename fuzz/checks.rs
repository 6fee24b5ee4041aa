//! The properties the fuzz targets check, as plain functions: the targets call them on
//! arbitrary input, and the test suite calls them on the committed seeds (`fuzz/seeds/`), so
//! the seeds run in CI without a fuzzer. Each runs on a thread with a small stack (256 KiB), so
//! a recursion that input could deepen shows up as a crash here rather than in production.

use atdata_codec::{DynamicSample, Schema};
use atdata_wds::expand_urls;

/// Stack size of the checking thread.
const SMALL_STACK: usize = 256 << 10;

fn on_small_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(SMALL_STACK)
            .spawn_scoped(s, f)
            .expect("a checking thread")
            .join()
            .expect("the check passed");
    });
}

/// Brace expansion of any text: an error or at most a million URLs, never a panic or a stack
/// overflow; a pattern without braces or escapes is its own single URL.
pub fn brace_expansion(data: &[u8]) {
    let Ok(pattern) = std::str::from_utf8(data) else {
        return;
    };
    on_small_stack(|| {
        if let Ok(urls) = expand_urls(pattern) {
            assert!(urls.len() <= 1_000_000);
            if !pattern.contains(['{', '}', '\\']) {
                assert_eq!(urls, [pattern]);
            }
        }
    });
}

/// Schema inference from any payload: an error or a schema that passes `validate` and decodes
/// the payload it came from, never a panic or a stack overflow.
pub fn schema_inference(data: &[u8]) {
    on_small_stack(|| {
        if let Ok(schema) = Schema::infer("Fuzz", [data]) {
            schema.validate().expect("an inferred schema is valid");
            DynamicSample::from_bytes(&schema, data).expect("a sample decodes by its own schema");
        }
    });
}
