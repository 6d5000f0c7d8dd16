//! Template values written as Python writes them: `str()` (what jinja2 prints for `{{ x }}`)
//! and `json.dumps` (transformers' `tojson` filter). Written by hand because minijinja prints
//! floats and containers in Rust's spelling (`1e16`, not `1e+16`), and serde_json's formatters
//! cannot give Python's separators (`", "`, `": "`), float spellings (`NaN`, `Infinity`) or
//! `ensure_ascii` escapes.

use std::fmt::Write;

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Value};

/// `json.dumps`' keyword arguments.
pub struct DumpOptions {
    ensure_ascii: bool,
    /// `None`: one line; `Some(unit)`: one item a line, indented by `unit` a level.
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
}

impl DumpOptions {
    /// From the filter's arguments (undefined: transformers' default).
    pub fn from_values(
        ensure_ascii: &Value,
        indent: &Value,
        separators: &Value,
        sort_keys: &Value,
    ) -> Result<Self, Error> {
        let indent = match indent.kind() {
            ValueKind::Undefined | ValueKind::None => None,
            ValueKind::String => Some(indent.to_string()),
            ValueKind::Number if indent.is_integer() => {
                let width = indent.as_i64().unwrap_or(0).max(0) as usize;
                Some(" ".repeat(width))
            }
            _ => return Err(invalid("tojson: indent must be an integer or a string")),
        };
        let (item_separator, key_separator) = match separators.kind() {
            ValueKind::Undefined | ValueKind::None if indent.is_some() => (",".into(), ": ".into()),
            ValueKind::Undefined | ValueKind::None => (", ".into(), ": ".into()),
            _ => {
                let parts: Vec<Value> = separators
                    .try_iter()
                    .map_err(|_| invalid("tojson: separators must be a pair of strings"))?
                    .collect();
                match parts.as_slice() {
                    [item, key] if item.as_str().is_some() && key.as_str().is_some() => {
                        (item.to_string(), key.to_string())
                    }
                    _ => return Err(invalid("tojson: separators must be a pair of strings")),
                }
            }
        };
        Ok(Self {
            ensure_ascii: !ensure_ascii.is_undefined() && ensure_ascii.is_true(),
            indent,
            item_separator,
            key_separator,
            sort_keys: !sort_keys.is_undefined() && sort_keys.is_true(),
        })
    }
}

/// Python's `str(value)` for the values whose spelling differs from minijinja's (floats, and
/// lists and dicts, which hold `repr`s); `None` for the others, which minijinja prints right.
pub fn python_str(value: &Value) -> Option<String> {
    match value.kind() {
        ValueKind::Number if !value.is_integer() => {
            Some(float_repr(f64::try_from(value.clone()).ok()?))
        }
        ValueKind::Seq | ValueKind::Map => {
            let mut out = String::new();
            write_repr(&mut out, value);
            Some(out)
        }
        _ => None,
    }
}

/// Python's `repr` of a template value.
fn write_repr(out: &mut String, value: &Value) {
    match value.kind() {
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(number) => out.push_str(&float_repr(number)),
            Err(_) => out.push_str(&value.to_string()),
        },
        // minijinja's debug spelling of a string is Python's repr.
        ValueKind::String => {
            let _ = write!(out, "{value:?}");
        }
        ValueKind::Seq => {
            out.push('[');
            for (index, item) in value.try_iter().into_iter().flatten().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &item);
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (index, key) in value.try_iter().into_iter().flatten().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &key);
                out.push_str(": ");
                write_repr(out, &value.get_item(&key).unwrap_or_default());
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// `json.dumps(value, **options)`.
pub fn dumps(value: &Value, options: &DumpOptions) -> Result<String, Error> {
    let mut out = String::new();
    write_value(&mut out, value, options, 0)?;
    Ok(out)
}

fn write_value(
    out: &mut String,
    value: &Value,
    options: &DumpOptions,
    depth: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, value),
        ValueKind::String => write_string(
            out,
            value.as_str().unwrap_or_default(),
            options.ensure_ascii,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(
                out,
                ('[', ']'),
                &items,
                options,
                depth,
                |out, item, depth| write_value(out, item, options, depth),
            )?;
        }
        ValueKind::Map => {
            let mut entries = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((key_text(&key)?, item));
            }
            if options.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            write_container(
                out,
                ('{', '}'),
                &entries,
                options,
                depth,
                |out, (key, item), depth| {
                    write_string(out, key, options.ensure_ascii);
                    out.push_str(&options.key_separator);
                    write_value(out, item, options, depth)
                },
            )?;
        }
        kind => {
            return Err(invalid(format!(
                "Object of type {kind} is not JSON serializable"
            )));
        }
    }
    Ok(())
}

/// `[a, b]` / `{...}`, one item a line when indenting.
fn write_container<T>(
    out: &mut String,
    (open, close): (char, char),
    items: &[T],
    options: &DumpOptions,
    depth: usize,
    mut write_item: impl FnMut(&mut String, &T, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(unit) = &options.indent {
            out.push('\n');
            (0..level).for_each(|_| out.push_str(unit));
        }
    };
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push_str(&options.item_separator);
        }
        newline(out, depth + 1);
        write_item(out, item, depth + 1)?;
    }
    newline(out, depth);
    out.push(close);
    Ok(())
}

/// A key as Python's json writes it: strings as they are, numbers, booleans and None spelled out.
fn key_text(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::Number | ValueKind::None | ValueKind::Bool => {
            let mut text = String::new();
            write_value(
                &mut text,
                key,
                &DumpOptions::from_values(
                    &Value::UNDEFINED,
                    &Value::UNDEFINED,
                    &Value::UNDEFINED,
                    &Value::UNDEFINED,
                )?,
                0,
            )?;
            Ok(text)
        }
        kind => Err(invalid(format!(
            "keys must be str, int, float, bool or None, not {kind}"
        ))),
    }
}

fn write_number(out: &mut String, value: &Value) {
    if value.is_integer() {
        out.push_str(&value.to_string());
        return;
    }
    let number = f64::try_from(value.clone()).unwrap_or(f64::NAN);
    if number.is_nan() {
        out.push_str("NaN");
    } else if number.is_infinite() {
        out.push_str(if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
    } else {
        out.push_str(&float_repr(number));
    }
}

/// Python's `repr` of a finite float: the shortest digits that read back, in positional
/// notation for exponents from -4 to 15, else as `1.5e-05` / `1e+16`.
pub fn float_repr(number: f64) -> String {
    if !number.is_finite() {
        return if number.is_nan() {
            "nan".into()
        } else if number > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} writes an integer exponent");
    if (-4..16).contains(&exponent) {
        let mut text = number.to_string();
        if !text.contains('.') {
            text.push_str(".0");
        }
        text
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// A JSON string as Python writes it: `"`, `\` and control characters escaped, and every
/// character past ASCII too when `ensure_ascii` (as UTF-16 code units).
fn write_string(out: &mut String, text: &str, ensure_ascii: bool) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (number, text) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1.5e-5, "1.5e-05"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.0001, "0.0001"),
            (2.5e300, "2.5e+300"),
        ] {
            assert_eq!(float_repr(number), text);
        }
    }

    #[test]
    fn strings_escape_as_python() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\u{1}é😀\u{7f}", false);
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é😀\u{7f}\"");
        let mut out = String::new();
        write_string(&mut out, "é😀\u{7f}", true);
        assert_eq!(out, "\"\\u00e9\\ud83d\\ude00\\u007f\"");
    }
}
