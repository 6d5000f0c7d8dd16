//! Chat templates, rendered as transformers renders them: Jinja templates (here `minijinja`, as
//! Hugging Face's own servers use) in an environment configured like transformers' own
//! (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, `strftime_now`, a `tojson`
//! that is Python's `json.dumps`, Python's string and dict methods), with the special tokens and
//! the caller's extra variables in the context, and transformers' `continue_final_message`.
//!
//! Templates come from the argument, a model directory's `chat_template.jinja` (and
//! `additional_chat_templates/*.jinja`), or `tokenizer_config.json`'s `chat_template` (a string
//! or a list of named templates).

mod python_format;

use std::path::Path;

use indexmap::IndexMap;
use minijinja::value::{Kwargs, Rest};
use minijinja::{AutoEscape, Environment, ErrorKind};
use serde_json::Value as Json;

use crate::error::{invalid_file, invalid_input, Error, Result};

pub use minijinja::Value;

/// A chat message: its fields (`role`, `content`...) in the caller's order.
pub type Message = IndexMap<Value, Value>;

/// transformers' file names for a model directory's templates.
const TEMPLATE_FILE: &str = "chat_template.jinja";
const TEMPLATE_DIR: &str = "additional_chat_templates";
const DEFAULT_NAME: &str = "default";
const TOOL_USE_NAME: &str = "tool_use";
/// What transformers appends to the final message to find where it ends once rendered.
const CONTINUE_TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";
/// The names a message's reasoning goes by; templates read the first.
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

/// The chat templates a tokenizer ships: none, one, or several by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ChatTemplates {
    #[default]
    None,
    Single(String),
    /// (name, template) in the order they were found.
    Named(Vec<(String, String)>),
}

impl ChatTemplates {
    /// The templates of a model directory, found as transformers finds them: the template files
    /// (`chat_template.jinja` is the "default" one) replace `tokenizer_config.json`'s
    /// `chat_template` when there are any.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        let main_file = dir.join(TEMPLATE_FILE);
        if main_file.is_file() {
            files.push((DEFAULT_NAME.to_string(), read_text(&main_file)?));
        }
        let extra_dir = dir.join(TEMPLATE_DIR);
        if extra_dir.is_dir() {
            let entries = std::fs::read_dir(&extra_dir).map_err(|e| {
                Error::InvalidFile(format!("cannot list {}: {e}", extra_dir.display()))
            })?;
            let mut paths: Vec<_> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "jinja"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path.file_stem().unwrap_or_default().to_string_lossy();
                files.push((name.into_owned(), read_text(&path)?));
            }
        }
        match files.len() {
            0 => Self::from_tokenizer_config(&dir.join("tokenizer_config.json")),
            1 if files[0].0 == DEFAULT_NAME => Ok(Self::Single(files.remove(0).1)),
            _ => Ok(Self::Named(files)),
        }
    }

    /// `tokenizer_config.json`'s `chat_template`: a string, or `[{"name", "template"}...]`.
    fn from_tokenizer_config(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Ok(Self::None);
        }
        let config: Json = serde_json::from_str(&read_text(path)?)
            .map_err(|e| Error::InvalidFile(format!("invalid {}: {e}", path.display())))?;
        match config.get("chat_template") {
            None | Some(Json::Null) => Ok(Self::None),
            Some(Json::String(template)) => Ok(Self::Single(template.clone())),
            Some(Json::Array(entries)) => entries
                .iter()
                .map(|entry| {
                    let field = |key: &str| entry.get(key).and_then(Json::as_str);
                    match (field("name"), field("template")) {
                        (Some(name), Some(template)) => {
                            Ok((name.to_string(), template.to_string()))
                        }
                        _ => invalid_file!(
                            "{}: each entry of chat_template must have a \"name\" and a \
                             \"template\" string",
                            path.display()
                        ),
                    }
                })
                .collect::<Result<_>>()
                .map(Self::Named),
            Some(_) => invalid_file!(
                "{}: chat_template must be a string or a list of {{\"name\", \"template\"}}",
                path.display()
            ),
        }
    }

    /// The template to render, as transformers' `get_chat_template`: `requested` is a template's
    /// name or a template itself; without it, the tokenizer's ("tool_use" when there are tools
    /// and the tokenizer has one, else "default").
    pub fn select<'a>(&'a self, requested: Option<&'a str>, has_tools: bool) -> Result<&'a str> {
        match (self, requested) {
            (Self::Named(named), requested) => {
                let find = |name: &str| named.iter().find(|(n, _)| n == name).map(|(_, t)| t);
                if let Some(requested) = requested {
                    return Ok(find(requested).map_or(requested, String::as_str));
                }
                let tool_use = has_tools.then(|| find(TOOL_USE_NAME)).flatten();
                match tool_use.or_else(|| find(DEFAULT_NAME)) {
                    Some(template) => Ok(template),
                    None => {
                        let mut names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                        names.sort_unstable();
                        invalid_input!(
                            "This model has multiple chat templates with no default specified! \
                             Please either pass a chat template or the name of the template you \
                             wish to use to the `chat_template` argument. Available template \
                             names are {names:?}."
                        )
                    }
                }
            }
            (_, Some(requested)) => Ok(requested),
            (Self::Single(template), None) => Ok(template),
            (Self::None, None) => invalid_input!(
                "Cannot use chat template functions because tokenizer.chat_template is not set \
                 and no template argument was passed! For information about writing templates \
                 and setting the tokenizer.chat_template attribute, please see the documentation \
                 at https://huggingface.co/docs/transformers/main/en/chat_templating"
            ),
        }
    }

    /// Writes the templates as transformers 5 saves them: `chat_template.jinja` for the single
    /// or "default" one, `additional_chat_templates/NAME.jinja` for the others.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text)
                .map_err(|e| Error::InvalidInput(format!("cannot write {}: {e}", path.display())))
        };
        match self {
            Self::None => Ok(()),
            Self::Single(template) => write(&dir.join(TEMPLATE_FILE), template),
            Self::Named(named) => {
                for (name, template) in named {
                    if name == DEFAULT_NAME {
                        write(&dir.join(TEMPLATE_FILE), template)?;
                    } else {
                        let extra_dir = dir.join(TEMPLATE_DIR);
                        std::fs::create_dir_all(&extra_dir).map_err(|e| {
                            Error::InvalidInput(format!(
                                "cannot create {}: {e}",
                                extra_dir.display()
                            ))
                        })?;
                        write(&extra_dir.join(format!("{name}.jinja")), template)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// What a conversation is rendered with besides its messages.
#[derive(Clone, Debug, Default)]
pub struct ChatOptions {
    /// Passed to the template, which then opens an assistant turn.
    pub add_generation_prompt: bool,
    /// The field of the final message to leave open for the model to continue (transformers'
    /// `continue_final_message`: `Some("content")` for `True`); `None` closes it as usual.
    pub continue_final_message: Option<String>,
    pub tools: Option<Value>,
    pub documents: Option<Value>,
    /// Further template variables: the special tokens, then the caller's (which win).
    pub variables: Vec<(String, Value)>,
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
}

impl ChatTemplate {
    /// Compiles a template in transformers' Jinja environment.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = environment();
        env.add_template_owned("chat_template", without_generation_tags(source))
            .map_err(template_error)?;
        Ok(Self {
            env,
            source: source.to_string(),
        })
    }

    /// Renders each conversation, as transformers' `apply_chat_template(tokenize=False)`.
    pub fn render(
        &self,
        conversations: Vec<Vec<Message>>,
        options: &ChatOptions,
    ) -> Result<Vec<String>> {
        if options.continue_final_message.is_some() && options.add_generation_prompt {
            return invalid_input!(
                "continue_final_message and add_generation_prompt are not compatible. Use \
                 continue_final_message when you want the model to continue the final message, \
                 and add_generation_prompt when you want to add a header that will prompt it to \
                 start a new assistant message instead."
            );
        }
        conversations
            .into_iter()
            .map(|messages| self.render_one(messages, options))
            .collect()
    }

    fn render_one(&self, mut messages: Vec<Message>, options: &ChatOptions) -> Result<String> {
        messages.iter_mut().for_each(alias_reasoning);
        let continued = match &options.continue_final_message {
            Some(field) => Some(self.tag_final_message(&mut messages, field)?),
            None => None,
        };
        let template = self
            .env
            .get_template("chat_template")
            .map_err(template_error)?;
        let mut context: IndexMap<Value, Value> = IndexMap::new();
        for (name, value) in &options.variables {
            context.insert(Value::from(name.as_str()), value.clone());
        }
        context.insert(
            "messages".into(),
            messages.into_iter().map(Value::from).collect(),
        );
        context.insert("tools".into(), options.tools.clone().into());
        context.insert("documents".into(), options.documents.clone().into());
        context.insert(
            "add_generation_prompt".into(),
            options.add_generation_prompt.into(),
        );
        let rendered = template
            .render(Value::from(context))
            .map_err(template_error)?;
        match continued {
            Some(final_text) => cut_after_final_message(rendered, &final_text),
            None => Ok(rendered),
        }
    }

    /// Appends transformers' tag to the final message's `field` (to its last text block when the
    /// content is a list of blocks); returns the text before the tag.
    fn tag_final_message(&self, messages: &mut [Message], field: &str) -> Result<String> {
        let Some(last) = messages.last_mut() else {
            return invalid_input!("continue_final_message is set but the conversation is empty!");
        };
        let key = Value::from(field);
        let Some(final_value) = last.get(&key).filter(|v| !v.is_none()).cloned() else {
            return invalid_input!(
                "continue_final_message is set but the final message has no \"{field}\" to continue!"
            );
        };
        // Reasoning is copied under several names: tag every copy, accept whichever the
        // template reads.
        let fields: Vec<&str> = if REASONING_FIELDS.contains(&field) {
            REASONING_FIELDS
                .into_iter()
                .filter(|f| last.get(&Value::from(*f)) == Some(&final_value))
                .collect()
        } else {
            vec![field]
        };
        if !fields.iter().any(|f| self.source.contains(f)) {
            return invalid_input!(
                "continue_final_message is set to \"{field}\" but this is not an accepted field in \
                 the chat_template"
            );
        }
        if let Some(text) = final_value.as_str() {
            let tagged = Value::from(format!("{text}{CONTINUE_TAG}"));
            for f in fields {
                last.insert(Value::from(f), tagged.clone());
            }
            return Ok(text.to_string());
        }
        match tag_last_text_block(&final_value) {
            Some((text, blocks)) => {
                last.insert(key, blocks);
                Ok(text)
            }
            None => invalid_input!(
                "continue_final_message is set but we could not find any text to continue in the \
                 final message!"
            ),
        }
    }
}

/// Renders conversations with a tokenizer's templates (`requested`: a name or a template).
pub fn apply_chat_template(
    templates: &ChatTemplates,
    requested: Option<&str>,
    conversations: Vec<Vec<Message>>,
    options: &ChatOptions,
) -> Result<Vec<String>> {
    let has_tools = options.tools.as_ref().is_some_and(|t| !t.is_none());
    let source = templates.select(requested, has_tools)?;
    ChatTemplate::new(source)?.render(conversations, options)
}

/// The environment transformers compiles templates in (its `_compile_jinja_template`).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(|out, state, value| match python_format::python_str(value) {
        Some(text) => out
            .write_str(&text)
            .map_err(|_| minijinja::Error::from(ErrorKind::WriteFailure)),
        None => minijinja::escape_formatter(out, state, value),
    });
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env
}

/// The error a template raises on purpose; its message is what the user sees.
#[derive(Debug)]
struct RaisedByTemplate(String);

impl std::fmt::Display for RaisedByTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedByTemplate {}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(
        minijinja::Error::new(ErrorKind::InvalidOperation, message.clone())
            .with_source(RaisedByTemplate(message)),
    )
}

/// The local time in a `strftime` format, as Python's `datetime.now().strftime(format)`.
fn strftime_now(format: String) -> std::result::Result<String, minijinja::Error> {
    let items = chrono::format::StrftimeItems::new(&format)
        .parse()
        .map_err(|e| {
            minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("strftime_now: invalid format {format:?}: {e}"),
            )
        })?;
    Ok(chrono::Local::now()
        .format_with_items(items.into_iter())
        .to_string())
}

/// transformers' `tojson` filter: Python's `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, arguments by position or name.
fn tojson(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if args.len() > NAMES.len() {
        return Err(minijinja::Error::from(ErrorKind::TooManyArguments));
    }
    let arg = |index: usize| -> std::result::Result<Value, minijinja::Error> {
        match args.get(index) {
            Some(value) => Ok(value.clone()),
            None => Ok(kwargs
                .get::<Option<Value>>(NAMES[index])?
                .unwrap_or_default()),
        }
    };
    let options = python_format::DumpOptions::from_values(&arg(0)?, &arg(1)?, &arg(2)?, &arg(3)?)?;
    kwargs.assert_all_used()?;
    python_format::dumps(value, &options)
}

/// minijinja has no custom tags: transformers' `{% generation %}` (which only marks the
/// assistant's text for its token masks) becomes an always-true `if`, with the same whitespace
/// control.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (open, body) = split_modifier_front(inner);
        let (body, close) = split_modifier_back(body);
        let replacement = match body.trim() {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(statement) => out.push_str(&format!("{{%{open} {statement} {close}%}}")),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

fn split_modifier_front(inner: &str) -> (&str, &str) {
    match inner.chars().next() {
        Some('-' | '+') => (&inner[..1], &inner[1..]),
        _ => ("", inner),
    }
}

fn split_modifier_back(inner: &str) -> (&str, &str) {
    match inner.chars().last() {
        Some('-' | '+') => (&inner[..inner.len() - 1], &inner[inner.len() - 1..]),
        _ => (inner, ""),
    }
}

/// transformers 5 reads a message's reasoning as `reasoning_content`, filled from the older
/// names for it, and as `thinking` (which gpt-oss templates read).
fn alias_reasoning(message: &mut Message) {
    let reasoning = REASONING_FIELDS.into_iter().find_map(|f| {
        message
            .get(&Value::from(f))
            .filter(|v| !v.is_none())
            .cloned()
    });
    if let Some(reasoning) = reasoning {
        let thinking = Value::from("thinking");
        if !message.contains_key(&thinking) {
            // A new key goes first, as `{"thinking": r, **message}` puts it.
            message.shift_insert(0, thinking, reasoning.clone());
        }
        message.insert(Value::from("reasoning_content"), reasoning);
    }
}

/// A list of content blocks with the tag appended to the last block that has a "text": (that
/// block's text, the new list).
fn tag_last_text_block(content: &Value) -> Option<(String, Value)> {
    let blocks: Vec<Value> = content.try_iter().ok()?.collect();
    if content.kind() != minijinja::value::ValueKind::Seq {
        return None;
    }
    let text_key = Value::from("text");
    let index = blocks.iter().rposition(|b| {
        b.kind() == minijinja::value::ValueKind::Map
            && b.get_item(&text_key).is_ok_and(|t| !t.is_undefined())
    })?;
    let block = &blocks[index];
    let text = block.get_item(&text_key).ok()?.to_string();
    let mut fields: Message = block
        .try_iter()
        .ok()?
        .map(|k| {
            let v = block.get_item(&k).unwrap_or_default();
            (k, v)
        })
        .collect();
    fields.insert(text_key, Value::from(format!("{text}{CONTINUE_TAG}")));
    let mut blocks = blocks;
    blocks[index] = Value::from(fields);
    Some((text, Value::from(blocks)))
}

/// The rendered chat up to the end of the continued final message (transformers' handling of
/// `continue_final_message` after rendering).
fn cut_after_final_message(rendered: String, final_text: &str) -> Result<String> {
    let tag = CONTINUE_TAG.trim();
    if !rendered.contains(final_text.trim()) || !rendered.contains(tag) {
        return invalid_input!(
            "continue_final_message is set but the final message does not appear in the chat \
             after applying the chat template! This can happen if the chat template deletes \
             portions of the final message. Please verify the chat template and final message in \
             your chat to ensure they are compatible.Final message to continue: {}\nRendered \
             chat:\n{rendered}",
            final_text.trim()
        );
    }
    let at = rendered.rfind(tag).expect("checked above");
    if rendered[at..].starts_with(CONTINUE_TAG) {
        Ok(rendered[..at].to_string())
    } else {
        // The template trimmed the message's trailing space.
        Ok(rendered[..at].trim_end().to_string())
    }
}

fn template_error(err: minijinja::Error) -> Error {
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(raised) = cause.downcast_ref::<RaisedByTemplate>() {
            return Error::InvalidInput(raised.0.clone());
        }
        source = cause.source();
    }
    Error::InvalidInput(format!("chat template error: {err:#}"))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidFile(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
        message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}\
        {{ '<|im_start|>assistant\n' }}{% endif %}";

    fn message(role: &str, content: &str) -> Message {
        [("role", role), ("content", content)]
            .into_iter()
            .map(|(k, v)| (Value::from(k), Value::from(v)))
            .collect()
    }

    fn render(template: &str, messages: Vec<Message>, options: &ChatOptions) -> Result<String> {
        Ok(ChatTemplate::new(template)?
            .render(vec![messages], options)?
            .remove(0))
    }

    #[test]
    fn chatml_with_generation_prompt() {
        let options = ChatOptions {
            add_generation_prompt: true,
            ..ChatOptions::default()
        };
        let text = render(CHATML, vec![message("user", "Hi")], &options).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_gives_the_template_message() {
        let template =
            "{% if messages[0].role != 'user' %}{{ raise_exception('Only user') }}{% endif %}";
        let err = render(template, vec![message("bot", "x")], &ChatOptions::default()).unwrap_err();
        assert_eq!(err.to_string(), "Only user");
        let err = render(
            "{{ messages[0].content.nope() }}",
            vec![message("user", "x")],
            &ChatOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("chat template error"), "{err}");
    }

    #[test]
    fn continue_final_message_cuts_after_the_message() {
        let options = ChatOptions {
            continue_final_message: Some("content".into()),
            ..ChatOptions::default()
        };
        let messages = vec![message("user", "Hi"), message("assistant", "Hello, I")];
        let text = render(CHATML, messages, &options).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello, I"
        );
        let both = ChatOptions {
            add_generation_prompt: true,
            ..options
        };
        assert!(render(CHATML, vec![message("user", "Hi")], &both).is_err());
    }

    #[test]
    fn python_habits() {
        let template = "{% for m in messages %}{{ m.content.strip().upper() }}{% if loop.last %}{% break %}\
            {% endif %}{% endfor %}|{{ none }}|{{ true }}|{{ 0.00001 }}|{{ {'a': [1, none]} | tojson }}\
            |{{ {'b': 1, 'a': 2} | tojson(indent=2, sort_keys=true) }}";
        let text = render(
            template,
            vec![message("user", " hi ")],
            &ChatOptions::default(),
        )
        .unwrap();
        assert_eq!(
            text,
            "HI|None|True|1e-05|{\"a\": [1, null]}|{\n  \"a\": 2,\n  \"b\": 1\n}"
        );
    }

    #[test]
    fn generation_tags_are_kept_transparent() {
        let template = "{% for m in messages %}{%- generation -%} {{ m.content }} {%- endgeneration %}{% endfor %}";
        let text = render(
            template,
            vec![message("assistant", "ok")],
            &ChatOptions::default(),
        )
        .unwrap();
        assert_eq!(text, "ok");
    }

    #[test]
    fn templates_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ChatTemplates::from_dir(dir.path()).unwrap(),
            ChatTemplates::None
        );
        let err = ChatTemplates::None.select(None, false).unwrap_err();
        assert!(
            err.to_string().contains("chat_template is not set"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "T"}]}"#,
        )
        .unwrap();
        let templates = ChatTemplates::from_dir(dir.path()).unwrap();
        assert_eq!(templates.select(None, false).unwrap(), "A");
        assert_eq!(templates.select(None, true).unwrap(), "T");
        assert_eq!(templates.select(Some("tool_use"), false).unwrap(), "T");
        assert_eq!(templates.select(Some("{{ x }}"), false).unwrap(), "{{ x }}");
        std::fs::write(dir.path().join(TEMPLATE_FILE), "B").unwrap();
        assert_eq!(
            ChatTemplates::from_dir(dir.path()).unwrap(),
            ChatTemplates::Single("B".into())
        );
        let saved = tempfile::tempdir().unwrap();
        templates.save(saved.path()).unwrap();
        assert_eq!(ChatTemplates::from_dir(saved.path()).unwrap(), templates);
    }
}
