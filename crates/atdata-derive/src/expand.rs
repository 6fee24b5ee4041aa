//! The generated code: the `Packable` impl and the `{Name}Columns` struct.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse::Sample;

/// `tokens` with every span set to `span` (so a bound built from the runtime's path and a
/// field's type is reported at the field).
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(g) = &tree {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                return proc_macro2::TokenTree::Group(group);
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

pub fn expand(sample: &Sample) -> TokenStream {
    let Sample {
        item,
        krate,
        fields,
        description,
    } = sample;
    let name = &item.ident;
    let name_str = name.to_string();
    let vis = &item.vis;
    let batch = format_ident!("{}Columns", name);
    let p = quote!(#krate::__private);
    let option = quote!(::core::option::Option);
    let count = fields.len();

    let description = match description {
        Some(d) => quote!(#option::Some(::std::string::String::from(#d))),
        None => quote!(#option::None),
    };

    // Every use of a field type is spanned at it, so an unsupported type is reported there.
    let schema_fields = fields.iter().map(|f| {
        let (key, ty) = (&f.key, &f.ty);
        quote_spanned! {ty.span()=>
            #p::SchemaField {
                name: ::std::string::String::from(#key),
                field_type: <#ty as #p::Field>::field_type(),
                optional: <#ty as #p::Field>::OPTIONAL,
            }
        }
    });
    let encodes = fields.iter().map(|f| {
        let (ident, key, ty) = (&f.ident, &f.key, &f.ty);
        let call = quote_spanned!(ty.span()=> <#ty as #p::Field>::encode(&self.#ident, &mut enc));
        quote! {
            enc.str(#key)?;
            #call.map_err(|e| e.in_field(#key))?;
        }
    });
    let slots: Vec<_> = (0..count).map(|i| format_ident!("__field{}", i)).collect();
    let slot_decls = fields.iter().zip(&slots).map(|(f, slot)| {
        let ty = &f.ty;
        quote!(let mut #slot: #option<#ty> = #option::None;)
    });
    let arms = fields.iter().zip(&slots).map(|(f, slot)| {
        let (key, ty) = (&f.key, &f.ty);
        let call = quote_spanned!(ty.span()=> <#ty as #p::Field>::decode(&mut dec));
        quote! {
            #key => {
                if #slot.is_some() {
                    return ::core::result::Result::Err(#p::duplicate_field(#key));
                }
                #slot = #option::Some(#call.map_err(|e| e.in_field(#key))?);
            }
        }
    });
    let inits = fields.iter().zip(&slots).map(|(f, slot)| {
        let (ident, key) = (&f.ident, &f.key);
        quote!(#ident: #slot.ok_or_else(|| #p::missing_field(#name_str, #key))?)
    });
    let columns = fields.iter().map(|f| {
        let (ident, ty, fvis) = (&f.ident, &f.ty, &f.vis);
        let column = quote_spanned!(ty.span()=> <#ty as #p::Field>::Column);
        let doc = format!("The `{}` field of every sample in the batch.", f.key);
        quote!(#[doc = #doc] #fvis #ident: #column)
    });
    let stacks = fields.iter().map(|f| {
        let (ident, key, ty) = (&f.ident, &f.key, &f.ty);
        let call = quote_spanned!(ty.span()=> <#ty as #p::Field>::stack(samples.iter().map(|s| &s.#ident)));
        quote!(#ident: #call.map_err(|e| e.in_field(#key))?)
    });
    // Every field type must be a `Field`: stated once per item as a where-clause spanned at the
    // field, so an unsupported type is one error there, and the bodies (which assume the
    // clause) add none.
    let bounds: Vec<_> = fields
        .iter()
        .map(|f| {
            let ty = &f.ty;
            let field = respan(quote!(#p::Field), ty.span());
            quote_spanned!(ty.span()=> #ty: #field)
        })
        .collect();
    let field_idents: Vec<_> = fields.iter().map(|f| &f.ident).collect();
    let field_keys: Vec<_> = fields.iter().map(|f| &f.key).collect();
    let batch_name = batch.to_string();
    let batch_doc = format!(
        "The columns of a batch of [`{name}`] samples: array fields stacked along a new leading axis, other fields collected in order."
    );

    quote! {
        #item

        #[doc = #batch_doc]
        #[allow(dead_code)] // a program may use only some columns
        #vis struct #batch where #(#bounds),* {
            #(#columns,)*
        }

        // Written out rather than derived: the derives' copies of the where-clause would each
        // report an unsupported field type again.
        impl ::core::clone::Clone for #batch where #(#bounds),* {
            fn clone(&self) -> Self {
                #batch { #(#field_idents: ::core::clone::Clone::clone(&self.#field_idents)),* }
            }
        }

        impl ::core::fmt::Debug for #batch where #(#bounds),* {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(#batch_name)
                    #(.field(#field_keys, &self.#field_idents))*
                    .finish()
            }
        }

        const _: () = {
            impl #krate::Packable for #name where #(#bounds),* {
                type Columns = #batch;

                fn schema() -> #p::Schema {
                    #p::Schema {
                        name: ::std::string::String::from(#name_str),
                        fields: ::std::vec![#(#schema_fields),*],
                        description: #description,
                    }
                }

                fn pack_into(&self, out: &mut ::std::vec::Vec<u8>) -> #p::Result<()> {
                    let mut enc = #p::Encoder::new(out);
                    enc.map_len(#count)?;
                    #(#encodes)*
                    ::core::result::Result::Ok(())
                }

                fn from_bytes(bytes: &[u8]) -> #p::Result<Self> {
                    let mut dec = #p::Decoder::new(bytes);
                    let len = dec.map_len()?;
                    #(#slot_decls)*
                    for _ in 0..len {
                        match dec.str()? {
                            #(#arms)*
                            other => return ::core::result::Result::Err(#p::unknown_field(#name_str, other)),
                        }
                    }
                    dec.finish()?;
                    ::core::result::Result::Ok(Self { #(#inits),* })
                }

                fn stack(samples: &[Self]) -> #p::Result<#batch> {
                    ::core::result::Result::Ok(#batch { #(#stacks),* })
                }
            }
        };
    }
}
