//! The `#[packable]` attribute macro of [atdata](https://docs.rs/atdata).
//!
//! `#[packable]` on a struct with named fields implements `Packable` (msgpack payloads
//! byte-identical to Python atdata), generates the `{Name}Columns` struct used by
//! `SampleBatch`, and the schema, whose description is the struct's doc comment.
//! `#[packable(crate = "atdata_codec")]` points the generated code at another path to the
//! runtime (the default is `::atdata`).
//!
//! Enums, unions, tuple structs, generic structs and fields of unsupported types are compile
//! errors pointing at the offending item.
//!
//! ```
//! use atdata_codec::Packable;
//! use atdata_derive::packable;
//!
//! /// A scored label.
//! #[packable(crate = "atdata_codec")]
//! struct Scored { label: String, score: f64 }
//!
//! assert_eq!(Scored::schema().fields.len(), 2);
//! ```

#![deny(missing_docs)]

mod expand;
mod parse;

use proc_macro::TokenStream;

/// Makes a struct with named fields a typed atdata sample. See the crate documentation.
#[proc_macro_attribute]
pub fn packable(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.into();
    match parse::Sample::parse(args.into(), item2.clone()) {
        Ok(sample) => expand::expand(&sample).into(),
        Err(err) => {
            // Emit the item unchanged too, so rustc still reports its own errors and uses.
            let errors = err.to_compile_error();
            quote::quote!(#item2 #errors).into()
        }
    }
}
