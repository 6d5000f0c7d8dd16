//! `_core.apply_chat_template`: Python conversations and template variables converted to
//! template values, rendered without the GIL.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::convert::to_py_err;
use crate::chat::{self, ChatOptions, ChatTemplates, Message, Value};

/// Renders conversations (lists of message dicts) with `templates` (the tokenizer's: None, a
/// template, or {name: template}) or `chat_template` (a template or a name), as
/// transformers' `apply_chat_template(tokenize=False)`. `continue_final_message` is the field to
/// continue or None; `variables` are the further template variables (special tokens, kwargs).
#[pyfunction]
#[pyo3(signature = (templates, chat_template, conversations, add_generation_prompt, continue_final_message, tools, documents, variables))]
#[allow(clippy::too_many_arguments)]
fn apply_chat_template(
    py: Python<'_>,
    templates: Option<&Bound<'_, PyAny>>,
    chat_template: Option<String>,
    conversations: Vec<Vec<Bound<'_, PyDict>>>,
    add_generation_prompt: bool,
    continue_final_message: Option<String>,
    tools: Option<&Bound<'_, PyAny>>,
    documents: Option<&Bound<'_, PyAny>>,
    variables: &Bound<'_, PyDict>,
) -> PyResult<Vec<String>> {
    let templates = match templates {
        None => ChatTemplates::None,
        Some(t) => match t.cast::<PyDict>() {
            Ok(named) => ChatTemplates::Named(
                named
                    .iter()
                    .map(|(name, template)| Ok((name.extract()?, template.extract()?)))
                    .collect::<PyResult<_>>()?,
            ),
            Err(_) => ChatTemplates::Single(t.extract()?),
        },
    };
    let conversations = conversations
        .iter()
        .map(|messages| messages.iter().map(to_message).collect())
        .collect::<PyResult<Vec<Vec<Message>>>>()?;
    let options = ChatOptions {
        add_generation_prompt,
        continue_final_message,
        tools: tools.map(to_value).transpose()?,
        documents: documents.map(to_value).transpose()?,
        variables: variables
            .iter()
            .map(|(name, value)| Ok((name.extract::<String>()?, to_value(&value)?)))
            .collect::<PyResult<_>>()?,
    };
    py.detach(|| {
        chat::apply_chat_template(
            &templates,
            chat_template.as_deref(),
            conversations,
            &options,
        )
    })
    .map_err(to_py_err)
}

fn to_message(message: &Bound<'_, PyDict>) -> PyResult<Message> {
    message
        .iter()
        .map(|(key, value)| Ok((to_value(&key)?, to_value(&value)?)))
        .collect()
}

/// A Python value as the template sees it: JSON-like data as it is; anything else (an image, an
/// array) as transformers' inert placeholder `"<TypeName>"`.
fn to_value(object: &Bound<'_, PyAny>) -> PyResult<Value> {
    if object.is_none() {
        return Ok(Value::from(()));
    }
    if let Ok(flag) = object.cast::<PyBool>() {
        return Ok(Value::from(flag.is_true()));
    }
    if object.is_instance_of::<PyInt>() {
        return match object.extract::<i64>() {
            Ok(number) => Ok(Value::from(number)),
            Err(_) => Ok(Value::from(object.extract::<i128>().map_err(|_| {
                PyTypeError::new_err("chat template values: an integer too large for 128 bits")
            })?)),
        };
    }
    if object.is_instance_of::<PyFloat>() {
        return Ok(Value::from(object.extract::<f64>()?));
    }
    if let Ok(text) = object.cast::<PyString>() {
        return Ok(Value::from(text.to_cow()?.into_owned()));
    }
    if let Ok(map) = object.cast::<PyDict>() {
        let entries = map
            .iter()
            .map(|(key, value)| Ok((to_value(&key)?, to_value(&value)?)))
            .collect::<PyResult<Message>>()?;
        return Ok(Value::from(entries));
    }
    if object.is_instance_of::<PyList>() || object.is_instance_of::<PyTuple>() {
        let items = object
            .try_iter()?
            .map(|item| to_value(&item?))
            .collect::<PyResult<Vec<Value>>>()?;
        return Ok(Value::from(items));
    }
    // numpy scalars become the Python numbers they hold, as in transformers.
    let numpy_scalar = object.py().import("numpy")?.getattr("generic")?;
    if object.is_instance(&numpy_scalar)? {
        return to_value(&object.call_method0("item")?);
    }
    Ok(Value::from(format!("<{}>", object.get_type().name()?)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(apply_chat_template, m)?)
}
