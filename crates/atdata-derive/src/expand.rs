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
        let key_bytes = syn::LitByteStr::new(key.as_bytes(), proc_macro2::Span::call_site());
        let call = quote_spanned!(ty.span()=> <#ty as #p::Field>::decode(&mut dec));
        quote! {
            #key_bytes => {
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
    // Decoding straight into columns: a tuple of one builder per field.
    let builder_types = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=> <#ty as #p::Field>::Builder)
    });
    let builder_ty = quote!((#(#builder_types,)*));
    let indices: Vec<_> = (0..count).map(syn::Index::from).collect();
    let builder_new = fields.iter().map(|f| {
        let ty = &f.ty;
        quote!(<<#ty as #p::Field>::Builder as #p::ColumnBuilder<#ty>>::with_capacity(rows))
    });
    let into_arms = fields.iter().zip(&indices).map(|(f, i)| {
        let (key, ty) = (&f.key, &f.ty);
        let key_bytes = syn::LitByteStr::new(key.as_bytes(), proc_macro2::Span::call_site());
        quote! {
            #key_bytes => {
                if seen[#i] {
                    return ::core::result::Result::Err(#p::duplicate_field(#key));
                }
                seen[#i] = true;
                <<#ty as #p::Field>::Builder as #p::ColumnBuilder<#ty>>::decode_into(&mut builders.#i, &mut dec)
                    .map_err(|e| e.in_field(#key))?;
            }
        }
    });
    let into_missing = fields.iter().zip(&indices).map(|(f, i)| {
        let key = &f.key;
        quote! {
            if !seen[#i] {
                return ::core::result::Result::Err(#p::missing_field(#name_str, #key));
            }
        }
    });
    let field_tys: Vec<_> = fields.iter().map(|f| &f.ty).collect();
    let idents_for_finish = fields.iter().zip(&indices).map(|(f, i)| {
        let (ident, key, ty) = (&f.ident, &f.key, &f.ty);
        quote! {
            #ident: <<#ty as #p::Field>::Builder as #p::ColumnBuilder<#ty>>::finish(builders.#i)
                .map_err(|e| e.in_field(#key))?
        }
    });
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
                        match dec.str_bytes()? {
                            #(#arms)*
                            other => return ::core::result::Result::Err(#p::unknown_key(#name_str, other)),
                        }
                    }
                    dec.finish()?;
                    ::core::result::Result::Ok(Self { #(#inits),* })
                }

                fn stack(samples: &[Self]) -> #p::Result<#batch> {
                    ::core::result::Result::Ok(#batch { #(#stacks),* })
                }

                type FieldBuilders = #builder_ty;

                fn field_builders(rows: usize) -> Self::FieldBuilders {
                    let _ = rows;
                    (#(#builder_new,)*)
                }

                fn decode_into(dec: #p::Decoder<'_>, builders: &mut Self::FieldBuilders, rows: usize) -> #p::Result<()> {
                    let mut dec = dec;
                    let decoded = (|| {
                        let len = dec.map_len()?;
                        let mut seen = [false; #count];
                        for _ in 0..len {
                            match dec.str_bytes()? {
                                #(#into_arms)*
                                other => return ::core::result::Result::Err(#p::unknown_key(#name_str, other)),
                            }
                        }
                        dec.finish()?;
                        #(#into_missing)*
                        ::core::result::Result::Ok(())
                    })();
                    if decoded.is_err() {
                        #( <<#field_tys as #p::Field>::Builder as #p::ColumnBuilder<#field_tys>>::truncate(&mut builders.#indices, rows); )*
                    }
                    let _ = rows;
                    decoded
                }

                fn push_row(builders: &mut Self::FieldBuilders, sample: Self) {
                    let _ = &builders;
                    let Self { #(#field_idents),* } = sample;
                    #( <<#field_tys as #p::Field>::Builder as #p::ColumnBuilder<#field_tys>>::push(&mut builders.#indices, #field_idents); )*
                }

                fn append_rows(builders: &mut Self::FieldBuilders, other: Self::FieldBuilders) {
                    let _ = (&builders, &other);
                    #( <<#field_tys as #p::Field>::Builder as #p::ColumnBuilder<#field_tys>>::append(&mut builders.#indices, other.#indices); )*
                }

                fn split_rows(builders: &mut Self::FieldBuilders, at: usize) -> Self::FieldBuilders {
                    let _ = (&builders, at);
                    (#( <<#field_tys as #p::Field>::Builder as #p::ColumnBuilder<#field_tys>>::split_off(&mut builders.#indices, at), )*)
                }

                fn finish_columns(builders: Self::FieldBuilders) -> #p::Result<#batch> {
                    let _ = &builders;
                    ::core::result::Result::Ok(#batch { #(#idents_for_finish),* })
                }

                fn row(columns: &#batch, i: usize) -> Self {
                    let _ = (columns, i);
                    Self { #( #field_idents: <#field_tys as #p::Field>::row(&columns.#field_idents, i) ),* }
                }
            }
        };
    }
}
