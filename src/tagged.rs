//! Internally tagged tables (`type = "storage"`, `dist = "normal"`) whose
//! errors keep the key of the field at fault.
//!
//! serde's derive for internally tagged enums buffers a table before it
//! knows the variant, which throws away the path and position of any error
//! inside it: `capacity_mwh = "big"` would be reported at the device table,
//! not at `capacity_mwh`. [`tagged_enum!`] declares such an enum once and
//! gives it a derived `Serialize` (internally tagged, so values round-trip
//! to the same TOML) and a `Deserialize` that takes the tag out of the
//! table, reads the rest as an externally tagged twin through
//! `serde_path_to_error`, and prefixes any error with the field's key
//! ([`KEY_PREFIX`]), which the scenario loader turns into a line and column.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Error};

/// Errors from inside a tagged table start with this, then the key, then
/// `` `: ``.
pub(crate) const KEY_PREFIX: &str = "at key `";

/// Reads an internally tagged table through its externally tagged twin `T`.
pub(crate) fn deserialize<'de, D, T>(d: D, tag: &'static str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut table = toml::Table::deserialize(d)?;
    let variant = match table.remove(tag) {
        Some(toml::Value::String(s)) => s,
        Some(other) => {
            return Err(D::Error::custom(format!(
                "{KEY_PREFIX}{tag}`: must be a string, got {}",
                other.type_str()
            )));
        }
        None => return Err(D::Error::custom(format!("missing field `{tag}`"))),
    };
    let mut outer = toml::Table::new();
    outer.insert(variant, toml::Value::Table(table));
    serde_path_to_error::deserialize::<_, T>(toml::Value::Table(outer)).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut message = e.inner().message().trim().to_string();
        let mut key = String::new();
        for seg in e.path().iter() {
            match seg {
                Segment::Map { key: k } => {
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(k);
                }
                Segment::Seq { index } => key.push_str(&format!("[{index}]")),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        if message.starts_with("unknown variant") {
            key = tag.to_string();
        }
        // A tagged table inside this one already named its key: join them.
        if let Some(rest) = message.strip_prefix(KEY_PREFIX)
            && let Some((inner, msg)) = rest.split_once("`: ")
        {
            key = format!("{key}.{inner}");
            message = msg.to_string();
        }
        if key.is_empty() {
            // About the table as a whole (a missing field): no key to add.
            D::Error::custom(message)
        } else {
            D::Error::custom(format!("{KEY_PREFIX}{key}`: {message}"))
        }
    })
}

/// Declares an internally tagged enum (`tag = "..."`) of struct and unit
/// variants, or of newtype variants, with a `Serialize` derive and a `Deserialize` that
/// locates errors (see the module docs). Variants are `snake_case` in TOML,
/// and unknown fields are rejected.
macro_rules! tagged_enum {
    (
        tag = $tag:literal;
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $({
                    $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
                })?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Serialize)]
        #[serde(tag = $tag, rename_all = "snake_case")]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant $({ $( $(#[$fmeta])* $field : $fty ),* })?
            ),*
        }

        const _: () = {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "snake_case", deny_unknown_fields)]
            enum Twin {
                $( $variant { $($( $(#[$fmeta])* $field : $fty ),*)? } ),*
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    Ok(match $crate::tagged::deserialize::<D, Twin>(d, $tag)? {
                        $( Twin::$variant { $($($field),*)? } => $name::$variant $({ $($field),* })? ),*
                    })
                }
            }
        };
    };
    (
        tag = $tag:literal;
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident ( $ty:ty ) ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Serialize)]
        #[serde(tag = $tag, rename_all = "snake_case")]
        $vis enum $name {
            $( $(#[$vmeta])* $variant($ty) ),*
        }

        const _: () = {
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "snake_case")]
            enum Twin {
                $( $variant($ty) ),*
            }

            impl<'de> serde::Deserialize<'de> for $name {
                fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    Ok(match $crate::tagged::deserialize::<D, Twin>(d, $tag)? {
                        $( Twin::$variant(v) => $name::$variant(v) ),*
                    })
                }
            }
        };
    };
}

pub(crate) use tagged_enum;
