//! The rate card file as written: YAML (or TOML when the name ends in `.toml`), read into plain
//! structs that refuse unknown fields. Every number that is money is kept as text here and
//! checked exactly by [`super::card`], which also names the field of every mistake.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::card::CardError;

/// Largest rate card file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCard {
    pub version: Option<Scalar>,
    pub currency: Option<String>,
    pub top_up_increment: Option<Scalar>,
    #[serde(default)]
    pub skus: Vec<RawSku>,
    #[serde(default)]
    pub plans: Vec<RawPlan>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSku {
    pub sku: Option<String>,
    pub unit: Option<String>,
    pub price: Option<Scalar>,
    pub free_quantity: Option<Scalar>,
    #[serde(default)]
    pub multipliers: UniqueMap,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub plan_id: Option<String>,
    pub allowance: Option<Scalar>,
    pub description: Option<String>,
    pub monthly_price: Option<Scalar>,
}

/// A scalar where a number is expected, kept as written. Decimal strings are the documented
/// form; plain integers are accepted too. A YAML/TOML float is kept only as the fact that it
/// was one, so that validation can refuse it by name: its digits are already lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scalar {
    Text(String),
    Integer(i128),
    Float,
    Bool,
}

impl Scalar {
    /// The text to parse as a decimal, or why there is none.
    pub fn decimal_text(&self) -> Result<String, String> {
        match self {
            Scalar::Text(s) => Ok(s.clone()),
            Scalar::Integer(i) => Ok(i.to_string()),
            Scalar::Float => Err(
                "is a floating-point number: write it as a quoted decimal string (e.g. \"0.2\") so it stays exact"
                    .to_string(),
            ),
            Scalar::Bool => Err("is a boolean, not a number".to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer (money as a quoted decimal, e.g. \"0.2\")")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool)
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A map of names to scalars that refuses a name given twice (a plain map would keep the last).
#[derive(Debug, Default)]
pub(crate) struct UniqueMap(pub BTreeMap<String, Scalar>);

impl<'de> Deserialize<'de> for UniqueMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = UniqueMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to decimal strings")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((name, value)) = map.next_entry::<String, Scalar>()? {
                    if out.contains_key(&name) {
                        return Err(de::Error::custom(format!("{name:?} is given twice")));
                    }
                    out.insert(name, value);
                }
                Ok(UniqueMap(out))
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

/// Which syntax a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    /// TOML when the name ends in `.toml`, else YAML.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

/// Parses the text; a syntax error or an unknown field names where it is.
pub(crate) fn parse(text: &str, format: Format) -> Result<RawCard, CardError> {
    match format {
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = path_of(e.path());
                let message = e.into_inner().to_string();
                let message = without_path_prefix(&field, &message).to_string();
                CardError::new(field, message)
            })
        }
        Format::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| CardError::new("file", toml_message(text, &e)))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = path_of(e.path());
                CardError::new(field, toml_message(text, e.inner()))
            })
        }
    }
}

/// serde_norway starts some messages with the path already (`skus[0]: unknown field ...`).
fn without_path_prefix<'m>(field: &str, message: &'m str) -> &'m str {
    match message.split_once(": ") {
        Some((prefix, rest)) if field.starts_with(prefix) => rest,
        _ => message,
    }
}

/// One line: the message and where it is (TOML's own text draws the line of the file).
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{} at line {line} column {column}", e.message().trim_end())
        }
        None => e.message().trim_end().to_string(),
    }
}

/// Reads a file, refusing one larger than [`MAX_FILE_BYTES`].
pub(crate) fn read(path: &Path) -> Result<String, CardError> {
    let size = std::fs::metadata(path)
        .map_err(|e| CardError::new("file", format!("cannot read {}: {e}", path.display())))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(CardError::new(
            "file",
            format!(
                "{} is {size} bytes, more than the {MAX_FILE_BYTES} allowed",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| CardError::new("file", format!("cannot read {}: {e}", path.display())))
}

fn path_of(path: &serde_path_to_error::Path) -> String {
    let p = path.to_string();
    if p == "." || p.is_empty() {
        "file".to_string()
    } else {
        p
    }
}
