//! Reading the annotated item and the macro's arguments, with every misuse reported at once.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, Fields, Ident, Item, ItemStruct, Lit, LitStr, Meta, Path, Type,
    Visibility,
};

/// A struct accepted by `#[packable]`.
pub struct Sample {
    pub item: ItemStruct,
    pub krate: Path,
    pub fields: Vec<SampleField>,
    pub description: Option<String>,
}

pub struct SampleField {
    pub ident: Ident,
    /// The msgpack key: the field name without `r#`.
    pub key: String,
    pub ty: Type,
    pub vis: Visibility,
}

/// Collects errors so the user sees every problem in one build.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

impl Sample {
    pub fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Sample> {
        let mut errors = Errors::default();
        let krate = parse_args(args, &mut errors);
        let item = match syn::parse2::<Item>(item)? {
            Item::Struct(s) => s,
            Item::Enum(e) => {
                return Err(syn::Error::new(
                    e.enum_token.span,
                    "#[packable] supports structs with named fields, not enums: a sample is a msgpack map of field names",
                ));
            }
            Item::Union(u) => {
                return Err(syn::Error::new(
                    u.union_token.span,
                    "#[packable] supports structs with named fields, not unions",
                ));
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "#[packable] applies to structs with named fields",
                ));
            }
        };
        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            errors.push(syn::Error::new(
                item.generics.span(),
                "#[packable] does not support generic structs: a schema needs concrete field types",
            ));
        }
        let fields = match &item.fields {
            Fields::Named(named) => named
                .named
                .iter()
                .filter_map(|f| {
                    let ident = f.ident.clone()?;
                    Some(SampleField {
                        key: ident.unraw().to_string(),
                        ident,
                        ty: f.ty.clone(),
                        vis: f.vis.clone(),
                    })
                })
                .collect(),
            Fields::Unnamed(unnamed) => {
                errors.push(syn::Error::new(
                    unnamed.span(),
                    "#[packable] needs named fields: the names are the msgpack map keys (tuple structs have none)",
                ));
                Vec::new()
            }
            Fields::Unit => {
                errors.push(syn::Error::new(
                    item.ident.span(),
                    "#[packable] needs named fields: write `struct Name {}` for a sample without fields",
                ));
                Vec::new()
            }
        };
        for field in &fields {
            if let Some((span, message)) = unsupported(&field.ty) {
                errors.push(syn::Error::new(span, message));
            }
        }
        errors.finish()?;
        Ok(Sample {
            description: doc_comment(&item.attrs),
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::atdata)),
            fields,
            item,
        })
    }
}

/// What a field may be, for the messages below.
const SUPPORTED: &str = "supported: bool, integers (i8..i64, isize, u8..u64, usize), f32, f64, String, Vec<u8> (bytes), Vec<T> (lists), Option<T>, and ndarray arrays of a numeric or bool element";

/// A field type known not to work, found by its spelling: where, and what to write instead.
/// (Other unsupported types, which the macro cannot tell from an alias, are reported by the
/// compiler as an unimplemented trait.)
fn unsupported(ty: &Type) -> Option<(proc_macro2::Span, String)> {
    let shown = quote::ToTokens::to_token_stream(ty)
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace(" , ", ", ")
        .replace("& ", "&");
    let refuse = |fix: &str| {
        Some((
            ty.span(),
            format!("`{shown}` cannot be a field of a #[packable] struct: {fix}; {SUPPORTED}"),
        ))
    };
    match ty {
        Type::Reference(_) => {
            refuse("a sample owns its values: use `String` for `&str`, `Vec<T>` for `&[T]`")
        }
        Type::Tuple(_) => {
            refuse("msgpack maps name every value: make each element a field of its own")
        }
        Type::Array(_) => {
            refuse("use `Vec<T>` for a list, or an ndarray `Array1<T>` for a numeric array")
        }
        Type::Slice(_) => refuse("use `Vec<T>`"),
        Type::Group(group) => unsupported(&group.elem),
        Type::Paren(paren) => unsupported(&paren.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            let fix = match last.ident.to_string().as_str() {
                "u128" => "use `u64` (msgpack integers are at most 64 bits)",
                "i128" => "use `i64` (msgpack integers are at most 64 bits)",
                "char" => "use `String`",
                "str" => "use `String`",
                "HashMap" | "BTreeMap" | "IndexMap" => {
                    "a schema has no map type: use two `Vec` fields (keys and values), or one field per key"
                }
                "HashSet" | "BTreeSet" | "IndexSet" => "use `Vec<T>`",
                "Box" | "Rc" | "Arc" | "Cow" => "use the value's own type",
                "Option" | "Vec" => {
                    // Look inside: `Vec<u128>` is as wrong as `u128`.
                    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                        return None;
                    };
                    return args.args.iter().find_map(|a| match a {
                        syn::GenericArgument::Type(inner) => unsupported(inner),
                        _ => None,
                    });
                }
                _ => return None,
            };
            refuse(fix)
        }
        _ => None,
    }
}

/// `crate = "path"`, the only argument.
fn parse_args(args: TokenStream, errors: &mut Errors) -> Option<Path> {
    let mut krate = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            krate = Some(lit.parse::<Path>()?);
            Ok(())
        } else {
            Err(meta.error("unknown #[packable] argument; the only one is `crate = \"path\"`"))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        errors.push(e);
    }
    krate
}

/// The doc comment as one string: each line without its first space, blank lines at the
/// ends dropped. `None` when there is none.
fn doc_comment(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|s| {
            s.lines()
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let text = lines.join("\n");
    let text = text.trim_matches('\n');
    (!text.trim().is_empty()).then(|| text.to_owned())
}
