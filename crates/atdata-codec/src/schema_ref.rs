//! Schema references: Python atdata's `atdata://local/schema/{Name}@{version}`, the seed's
//! `atdata://local/sampleSchema/...` and Python's legacy `local://schemas/...`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

const SEED_PREFIX: &str = "atdata://local/sampleSchema/";
const PYTHON_PREFIX: &str = "atdata://local/schema/";
const LEGACY_PREFIX: &str = "local://schemas/";

/// Which form new schema references are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaRefForm {
    /// `atdata://local/schema/{Name}@{version}`: Python atdata 0.3 and later, the default.
    #[default]
    Python,
    /// `atdata://local/sampleSchema/{Name}@{version}`: the seed document's form, which Python
    /// atdata rejects (`ValueError: Invalid schema reference`); read always, written on request.
    Seed,
}

/// A reference to a versioned schema record.
///
/// Parsing accepts the seed form, Python's current form and the legacy
/// `local://schemas/{module.Name}@{version}` (the module path is dropped). All three name the
/// same stored record, `LocalSchema:{Name}@{version}`. Display writes Python's form.
///
/// ```
/// use atdata_codec::{SchemaRef, SchemaRefForm};
///
/// let r: SchemaRef = "local://schemas/golden.models.GoldenImage@1.0.0".parse().unwrap();
/// assert_eq!((r.name(), r.version()), ("GoldenImage", "1.0.0"));
/// assert_eq!(r.to_string(), "atdata://local/schema/GoldenImage@1.0.0");
/// assert_eq!(r.format(SchemaRefForm::Seed), "atdata://local/sampleSchema/GoldenImage@1.0.0");
/// assert!("atdata://other/GoldenImage@1".parse::<SchemaRef>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaRef {
    name: String,
    version: String,
}

impl SchemaRef {
    /// A reference to `name` at `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> SchemaRef {
        SchemaRef {
            name: name.into(),
            version: version.into(),
        }
    }

    /// Parses any of the accepted forms.
    pub fn parse(reference: &str) -> Result<SchemaRef> {
        let invalid = |reason| Error::InvalidSchemaRef {
            reference: reference.to_owned(),
            reason,
        };
        let rest = [SEED_PREFIX, PYTHON_PREFIX, LEGACY_PREFIX]
            .iter()
            .find_map(|p| reference.strip_prefix(p))
            .ok_or_else(|| invalid("expected atdata://local/schema/, atdata://local/sampleSchema/ or local://schemas/"))?;
        let (name, version) = rest
            .rsplit_once('@')
            .ok_or_else(|| invalid("schema reference must include a version (@version)"))?;
        let name = name.rsplit_once('.').map_or(name, |(_, n)| n);
        if name.is_empty() || version.is_empty() {
            return Err(invalid("empty name or version"));
        }
        Ok(SchemaRef::new(name, version))
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema's version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The reference written in `form`.
    pub fn format(&self, form: SchemaRefForm) -> String {
        let prefix = match form {
            SchemaRefForm::Seed => SEED_PREFIX,
            SchemaRefForm::Python => PYTHON_PREFIX,
        };
        format!("{prefix}{}@{}", self.name, self.version)
    }
}

impl fmt::Display for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(SchemaRefForm::Python))
    }
}

impl FromStr for SchemaRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<SchemaRef> {
        SchemaRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_forms_name_the_same_record() {
        let forms = [
            "atdata://local/sampleSchema/Img@1.2.3",
            "atdata://local/schema/Img@1.2.3",
            "local://schemas/pkg.mod.Img@1.2.3",
        ];
        for f in forms {
            assert_eq!(
                SchemaRef::parse(f).unwrap(),
                SchemaRef::new("Img", "1.2.3"),
                "{f}"
            );
        }
    }

    #[test]
    fn version_is_after_the_last_at() {
        let r = SchemaRef::parse("atdata://local/schema/a@b@2").unwrap();
        assert_eq!((r.name(), r.version()), ("a@b", "2"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Img@1",
            "atdata://local/schema/Img",
            "atdata://local/schema/@1",
            "atdata://local/schema/Img@",
            "at://did/x/y",
        ] {
            assert!(
                matches!(SchemaRef::parse(bad), Err(Error::InvalidSchemaRef { .. })),
                "{bad}"
            );
        }
    }
}
