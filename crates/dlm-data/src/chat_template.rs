//! The chat template of an instruction-tuned model (LLaDA-8B-Instruct, Dream-v0-Instruct-7B,
//! …): the Jinja string in `tokenizer_config.json` that turns a list of messages into the
//! one prompt text the model was tuned on, rendered with `minijinja` — the engine HF
//! text-generation-inference and mistral.rs render these templates with — set up the way
//! transformers' `apply_chat_template` sets up Jinja2:
//!
//! - `trim_blocks` and `lstrip_blocks` on (transformers' `_compile_jinja_template`);
//! - the context is `messages`, `add_generation_prompt`, `tools = none`,
//!   `documents = none` and the tokenizer's special tokens (`bos_token`, `eos_token`,
//!   `unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token`,
//!   `additional_special_tokens`) as strings — transformers' `special_tokens_map`;
//! - `raise_exception(message)` fails the rendering with `message`; `strftime_now(format)`
//!   formats the current time (UTC here; transformers uses the local time);
//! - `tojson` is transformers' own (`json.dumps(x, ensure_ascii=False, indent=None,
//!   separators=None, sort_keys=False)`: no HTML escaping, Python's separators and
//!   number formats), not minijinja's HTML-safe one;
//! - Python's string and dict methods (`.strip()`, `.startswith(…)`, `.items()`, …) through
//!   `minijinja-contrib`'s `pycompat`; `{% break %}`/`{% continue %}` (Jinja2's
//!   `loopcontrols`, which transformers enables).
//!
//! Where the template is: `chat_template.jinja` beside the tokenizer (what newer
//! transformers writes; it wins over the JSON key, as there), else `tokenizer_config.json`'s
//! `chat_template`, a string or a list of `{"name", "template"}` objects (the one named
//! `default` is used). Special tokens come from `special_tokens_map.json`, then
//! `tokenizer_config.json`, as plain strings or AddedToken objects `{"content": …}`.
//! Transformers' `{% generation %}` tag (assistant masks for training) is not supported:
//! such a template fails to compile, with the line.
//!
//! The rendered text already holds the template's special tokens (`<|startoftext|>`,
//! `<|im_start|>`, …), so it is tokenized without adding any ([`chat_prefix`]), as
//! LLaDA's and Dream's own scripts do (`tokenizer(prompt, add_special_tokens=False)`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::tokenizer::hf_files::{HfFiles, read_optional_json};
use crate::{DataError, Tokenizer};

/// The file that holds the template (key `chat_template`) and the special tokens.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
/// A template kept in a file of its own (newer transformers); wins over the JSON key.
pub const CHAT_TEMPLATE_JINJA_FILE: &str = "chat_template.jinja";

/// The name the template has inside its environment (and in minijinja's messages).
const TEMPLATE_NAME: &str = "chat_template";

/// The special-token attributes transformers passes to every template
/// (`SpecialTokensMixin.SPECIAL_TOKENS_ATTRIBUTES`).
const SPECIAL_TOKEN_KEYS: [&str; 7] =
    ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/// One chat message, as OpenAI clients and transformers' `apply_chat_template` give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// The dict a template sees: `{"role": …, "content": …}`, in that order.
    fn to_value(&self) -> Value {
        Value::from_pairs([("role", self.role.as_str()), ("content", self.content.as_str())])
    }
}

/// A model's compiled chat template with the special tokens it is rendered with.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    path: PathBuf,
    /// `bos_token`, `eos_token`, … as transformers' `special_tokens_map` gives them.
    special_tokens: Vec<(String, Value)>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("path", &self.path)
            .field("source", &self.source)
            .field("special_tokens", &self.special_tokens)
            .finish()
    }
}

impl PartialEq for ChatTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.path == other.path && self.special_tokens == other.special_tokens
    }
}

impl ChatTemplate {
    /// The chat template of the tokenizer in `dir`: `chat_template.jinja`, else
    /// `tokenizer_config.json`'s `chat_template`. `Ok(None)` when there is neither (or the
    /// key is `null`); an error names the file when it is not valid JSON, when
    /// `chat_template` has the wrong shape, or when the template does not compile.
    pub fn from_model_dir(dir: &Path) -> Result<Option<ChatTemplate>, DataError> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let files = HfFiles {
            tokenizer_config: read_optional_json(&config_path)?,
            special_tokens_map: read_optional_json(&dir.join("special_tokens_map.json"))?,
            config: None,
        };
        let jinja_path = dir.join(CHAT_TEMPLATE_JINJA_FILE);
        let (source, path) = match std::fs::read_to_string(&jinja_path) {
            Ok(text) => (text, jinja_path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(config) = &files.tokenizer_config else { return Ok(None) };
                match template_in_config(config, &config_path)? {
                    Some(source) => (source, config_path),
                    None => return Ok(None),
                }
            }
            Err(e) => return Err(DataError::Io { path: jinja_path, source: e }),
        };
        let special_tokens = special_tokens(&files);
        Self::compile(source, path, special_tokens).map(Some)
    }

    /// A template from its source text; `bos_token`/`eos_token` (and any other special
    /// tokens) as transformers' `special_tokens_map` would give them. `path` names the
    /// template in error messages.
    pub fn from_source(
        source: impl Into<String>,
        path: impl Into<PathBuf>,
        special_tokens: &[(&str, &str)],
    ) -> Result<ChatTemplate, DataError> {
        let tokens = special_tokens.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
        Self::compile(source.into(), path.into(), tokens)
    }

    fn compile(source: String, path: PathBuf, special_tokens: Vec<(String, Value)>) -> Result<ChatTemplate, DataError> {
        let mut env =
            environment().map_err(|e| template_error(&path, format!("cannot set up Jinja: {}", describe(&e))))?;
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| template_error(&path, format!("the template does not compile: {}", describe(&e))))?;
        Ok(ChatTemplate { env, source, path, special_tokens })
    }

    /// The prompt text of `messages`, as transformers' `apply_chat_template(messages,
    /// tokenize=False, add_generation_prompt=…)` renders it.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, DataError> {
        let template = self.env.get_template(TEMPLATE_NAME).map_err(|e| template_error(&self.path, describe(&e)))?;
        let mut ctx: Vec<(String, Value)> = vec![
            ("messages".into(), messages.iter().map(ChatMessage::to_value).collect()),
            ("add_generation_prompt".into(), Value::from(add_generation_prompt)),
            ("tools".into(), Value::from(())),
            ("documents".into(), Value::from(())),
        ];
        ctx.extend(self.special_tokens.iter().cloned());
        let ctx = Value::from_pairs(ctx);
        template.render(ctx).map_err(|e| match raised_message(&e) {
            Some(message) => template_error(&self.path, format!("the template raised an exception: {message}")),
            None => template_error(&self.path, format!("cannot render: {}", describe(&e))),
        })
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The file the template was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A special token the template is rendered with (`"bos_token"`, …), when set.
    pub fn special_token(&self, key: &str) -> Option<&str> {
        self.special_tokens.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_str())
    }
}

/// The canvas prefix of a rendered chat prompt: its ids with no special tokens added (the
/// template already wrote them) and nothing dropped, as LLaDA's and Dream's scripts
/// tokenize it (`tokenizer(prompt, add_special_tokens=False)`).
pub fn chat_prefix(tokenizer: &Tokenizer, rendered: &str) -> Result<Vec<u32>, DataError> {
    tokenizer.encode(rendered, false)
}

fn template_error(path: &Path, message: String) -> DataError {
    DataError::ChatTemplate { path: path.to_path_buf(), message }
}

/// `tokenizer_config.json`'s `chat_template`: a string, or the `default` entry of a list of
/// `{"name", "template"}` objects (transformers also accepts an object name → template).
fn template_in_config(config: &Json, path: &Path) -> Result<Option<String>, DataError> {
    let bad = |message: String| template_error(path, message);
    let named = |pairs: Vec<(String, Json)>| -> Result<Option<String>, DataError> {
        let names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
        match pairs.iter().find(|(n, _)| n == "default") {
            Some((_, Json::String(t))) => Ok(Some(t.clone())),
            Some((_, other)) => {
                Err(bad(format!("chat_template \"default\" must be a string, found {}", json_type(other))))
            }
            None => Err(bad(format!(
                "chat_template has several templates ({}) and none is named \"default\"",
                names.join(", ")
            ))),
        }
    };
    match config.get("chat_template") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(t)) => Ok(Some(t.clone())),
        Some(Json::Array(items)) => {
            let mut pairs = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match (item.get("name").and_then(Json::as_str), item.get("template")) {
                    (Some(name), Some(t)) => pairs.push((name.to_owned(), t.clone())),
                    _ => {
                        return Err(bad(format!(
                            "chat_template[{i}] must be an object {{\"name\": …, \"template\": …}}, found {}",
                            json_type(item)
                        )));
                    }
                }
            }
            named(pairs)
        }
        Some(Json::Object(map)) => named(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(other) => Err(bad(format!(
            "chat_template must be a string or a list of {{\"name\", \"template\"}} objects, found {}",
            json_type(other)
        ))),
    }
}

fn json_type(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// transformers' `special_tokens_map`: every special token that is set, as a string
/// (`special_tokens_map.json` first, then `tokenizer_config.json`), and
/// `additional_special_tokens` as a list of strings.
fn special_tokens(files: &HfFiles) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = SPECIAL_TOKEN_KEYS
        .iter()
        .filter_map(|key| files.token_name(key).filter(|t| !t.is_empty()).map(|t| ((*key).to_owned(), Value::from(t))))
        .collect();
    let additional = [&files.special_tokens_map, &files.tokenizer_config]
        .into_iter()
        .flatten()
        .find_map(|v| v.get("additional_special_tokens")?.as_array().cloned());
    if let Some(list) = additional {
        let tokens: Vec<String> = list
            .iter()
            .filter_map(|t| match t {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("content")?.as_str().map(str::to_owned),
                _ => None,
            })
            .collect();
        if !tokens.is_empty() {
            out.push(("additional_special_tokens".into(), Value::from(tokens)));
        }
    }
    out
}

/// The Jinja environment transformers renders chat templates in, on minijinja.
fn environment() -> Result<Environment<'static>, Error> {
    let mut env = Environment::new();
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    // Jinja2 builtins that minijinja keeps in its contrib crate.
    env.add_filter("truncate", minijinja_contrib::filters::truncate);
    env.add_filter("filesizeformat", minijinja_contrib::filters::filesizeformat);
    env.add_filter("striptags", minijinja_contrib::filters::striptags);
    env.add_function("cycler", minijinja_contrib::globals::cycler);
    env.add_function("joiner", minijinja_contrib::globals::joiner);
    Ok(env)
}

/// What `raise_exception` raised: carried as the error's source so that it can be told
/// apart from the engine's own errors.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// `raise_exception(message)`: fails the rendering with `message` (transformers raises
/// `jinja2.exceptions.TemplateError(message)`).
fn raise_exception(message: Value) -> Result<Value, Error> {
    let message = match message.as_str() {
        Some(s) => s.to_owned(),
        None => message.to_string(),
    };
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

/// The message of a `raise_exception` somewhere in `e`'s source chain.
fn raised_message(e: &Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Raised>() {
            return Some(r.0.clone());
        }
        cur = err.source();
    }
    None
}

/// A minijinja error in one line: kind, detail, the template line, and its cause.
fn describe(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line().filter(|&l| l > 0) {
        s.push_str(&format!(" (line {line} of the template)"));
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

// ---------------------------------------------------------------------------------------
// tojson: Python's json.dumps, as transformers' template filter calls it.

/// `x | tojson(ensure_ascii=False, indent=None, separators=None, sort_keys=False)`, the
/// filter transformers installs (`json.dumps` with these arguments): no HTML escaping,
/// `", "`/`": "` separators (`","` between items when indented), keys in their order.
fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if args.0.len() > NAMES.len() {
        return Err(Error::new(ErrorKind::TooManyArguments, "tojson takes at most 4 arguments"));
    }
    let mut opts: [Option<Value>; 4] = Default::default();
    for (i, v) in args.0.iter().enumerate() {
        opts[i] = Some(v.clone());
    }
    for (i, name) in NAMES.iter().enumerate() {
        if let Some(v) = kwargs.get::<Option<Value>>(name)? {
            if opts[i].is_some() {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("tojson got {name} twice")));
            }
            opts[i] = Some(v);
        }
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = opts;
    let indent: Option<String> = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match (v.as_str(), v.kind()) {
            (Some(s), _) => Some(s.to_owned()),
            (None, ValueKind::Number) if v.is_integer() => {
                let n = v.as_i64().unwrap_or(0);
                Some(" ".repeat(n.max(0) as usize))
            }
            _ => return Err(Error::new(ErrorKind::InvalidOperation, "tojson: indent must be an integer or a string")),
        },
    };
    let (item_sep, key_sep) = match separators {
        Some(v) if !v.is_none() && !v.is_undefined() => {
            let parts: Vec<Value> = v.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                    (a.as_str().unwrap_or_default().to_owned(), b.as_str().unwrap_or_default().to_owned())
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: separators must be a pair of strings (item_separator, key_separator)",
                    ));
                }
            }
        }
        _ if indent.is_some() => (",".to_owned(), ": ".to_owned()),
        _ => (", ".to_owned(), ": ".to_owned()),
    };
    let opts = DumpOptions {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        indent,
        item_sep,
        key_sep,
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
    };
    let mut out = String::new();
    dump(value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}

struct DumpOptions {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn not_serializable(kind: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("tojson: object of type {kind} is not JSON serializable"))
}

fn dump(value: &Value, opts: &DumpOptions, level: usize, out: &mut String) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Undefined => Err(not_serializable("Undefined")),
        ValueKind::None => {
            out.push_str("null");
            Ok(())
        }
        ValueKind::Bool => {
            out.push_str(if value.is_true() { "true" } else { "false" });
            Ok(())
        }
        ValueKind::Number => {
            out.push_str(&json_number(value)?);
            Ok(())
        }
        ValueKind::String => {
            json_string(value.as_str().unwrap_or_default(), opts.ensure_ascii, out);
            Ok(())
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            dump_container(out, opts, level, '[', ']', items.len(), |i, out| dump(&items[i], opts, level + 1, out))
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((json_key(&key)?, item));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            dump_container(out, opts, level, '{', '}', entries.len(), |i, out| {
                json_string(&entries[i].0, opts.ensure_ascii, out);
                out.push_str(&opts.key_sep);
                dump(&entries[i].1, opts, level + 1, out)
            })
        }
        ValueKind::Bytes => Err(not_serializable("bytes")),
        ValueKind::Plain => Err(not_serializable("object")),
        ValueKind::Invalid => Err(Error::new(ErrorKind::InvalidOperation, format!("tojson: invalid value {value}"))),
        _ => Err(not_serializable("object")),
    }
}

/// A JSON array or object as Python writes it: empty as `[]`/`{}`; with an indent, one
/// item per line.
fn dump_container(
    out: &mut String,
    opts: &DumpOptions,
    level: usize,
    open: char,
    close: char,
    len: usize,
    mut item: impl FnMut(usize, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        if let Some(ind) = &opts.indent {
            out.push('\n');
            out.push_str(&ind.repeat(level + 1));
        }
        item(i, out)?;
    }
    if let Some(ind) = &opts.indent {
        out.push('\n');
        out.push_str(&ind.repeat(level));
    }
    out.push(close);
    Ok(())
}

/// A dict key as `json.dumps` writes it: strings as they are; numbers, booleans and
/// `None` converted (`"1"`, `"true"`, `"null"`).
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::Number => json_number(key),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::None => Ok("null".to_owned()),
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: keys must be str, int, float, bool or None, not {other}"),
        )),
    }
}

/// A number as Python's `json.dumps` writes it: integers in full, floats as `repr`
/// (`1.0`, `0.1`, `1e-05`, `1e+16`), and `NaN`/`Infinity`/`-Infinity`.
fn json_number(value: &Value) -> Result<String, Error> {
    if value.is_integer() {
        return Ok(value.to_string());
    }
    let f = f64::try_from(value.clone())
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("tojson: {value} is not a number")))?;
    Ok(python_float_repr(f))
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional when the
/// decimal exponent is in [-4, 16), else scientific with a signed two-digit exponent.
fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let m = if n > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits.clone() };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

/// A JSON string as Python writes it: `"` and `\` escaped, `\n \r \t \b \f` by name,
/// other control characters as `\u00XX`; with `ensure_ascii` every non-ASCII character
/// (and DEL) as `\uXXXX` (UTF-16, surrogate pairs above U+FFFF).
fn json_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && !(' '..='~').contains(&c) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// strftime_now

/// `strftime_now(format)`: the current time formatted as Python's `strftime` would (in
/// UTC; transformers formats the local time). Llama-3.1-style templates use it for
/// "Today Date: 26 Jul 2024".
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// The common `strftime` directives on a UTC timestamp (`%Y %m %d %H %M %S %y %b %B %a %A
/// %j %p %I %e %Z %z %%`, the glibc `-` flag for unpadded numbers); others are kept as
/// written.
fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let unpadded = chars.peek() == Some(&'-');
        if unpadded {
            chars.next();
        }
        let num = |v: i64, width: usize| if unpadded { v.to_string() } else { format!("{v:0width$}") };
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('m') => out.push_str(&num(month, 2)),
            Some('d') => out.push_str(&num(day, 2)),
            Some('e') => out.push_str(&if unpadded { day.to_string() } else { format!("{day:>2}") }),
            Some('H') => out.push_str(&num(hour, 2)),
            Some('I') => out.push_str(&num((hour + 11) % 12 + 1, 2)),
            Some('M') => out.push_str(&num(minute, 2)),
            Some('S') => out.push_str(&num(second, 2)),
            Some('j') => out.push_str(&num(yday, 3)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('b') | Some('h') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a (proleptic Gregorian) date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn render_str(source: &str, messages: &[ChatMessage], generation_prompt: bool) -> Result<String, DataError> {
        ChatTemplate::from_source(source, "test.jinja", &[("bos_token", "<s>"), ("eos_token", "</s>")])?
            .render(messages, generation_prompt)
    }

    #[test]
    fn missing_file_or_key_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
        write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"bos_token": "<s>"}"#);
        assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
        write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"bos_token": "<s>", "chat_template": null}"#);
        assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
    }

    #[test]
    fn reads_string_list_and_jinja_file_with_added_token_objects() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            TOKENIZER_CONFIG_FILE,
            r#"{"bos_token": {"content": "<B>", "lstrip": false, "__type": "AddedToken"}, "eos_token": "<E>",
                "chat_template": [{"name": "tool_use", "template": "tools"},
                                  {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}"}]}"#,
        );
        let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&[ChatMessage::user("hi")], true).unwrap(), "<B>hi<E>");
        assert_eq!(t.special_token("bos_token"), Some("<B>"));
        assert!(t.path().ends_with(TOKENIZER_CONFIG_FILE));
        // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
        write(dir.path(), "special_tokens_map.json", r#"{"eos_token": {"content": "<END>"}}"#);
        let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&[ChatMessage::user("hi")], true).unwrap(), "<B>hi<END>");
        // chat_template.jinja wins over the JSON key.
        write(dir.path(), CHAT_TEMPLATE_JINJA_FILE, "[{{ messages[0].role }}]\n");
        let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&[ChatMessage::user("hi")], true).unwrap(), "[user]");
        assert!(t.path().ends_with(CHAT_TEMPLATE_JINJA_FILE));
    }

    #[test]
    fn bad_files_and_templates_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), TOKENIZER_CONFIG_FILE, "{not json");
        let e = ChatTemplate::from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("invalid JSON") && e.contains(TOKENIZER_CONFIG_FILE), "{e}");

        write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"chat_template": 5}"#);
        let e = ChatTemplate::from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains(TOKENIZER_CONFIG_FILE) && e.contains("found a number"), "{e}");

        write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"chat_template": [{"name": "rag", "template": "x"}]}"#);
        let e = ChatTemplate::from_model_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("none is named \"default\"") && e.contains("rag"), "{e}");

        write(
            dir.path(),
            TOKENIZER_CONFIG_FILE,
            r#"{"chat_template": "{% for m in messages %}\n{{ m.content }\n{% endfor %}"}"#,
        );
        let e = ChatTemplate::from_model_dir(dir.path()).unwrap_err();
        assert!(matches!(e, DataError::ChatTemplate { .. }));
        let e = e.to_string();
        assert!(e.contains(TOKENIZER_CONFIG_FILE) && e.contains("does not compile") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn raise_exception_propagates_its_message() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
        assert_eq!(render_str(src, &[ChatMessage::user("x")], false).unwrap(), "ok");
        let e = render_str(src, &[ChatMessage::new("assistant", "x")], false).unwrap_err().to_string();
        assert!(
            e.contains("test.jinja")
                && e.contains(
                    "raised an exception: Conversation roles must alternate user/assistant/user/assistant/..."
                ),
            "{e}"
        );
    }

    #[test]
    fn python_methods_blocks_and_generation_prompt() {
        let src = "{% for m in messages %}\n  {% if m.content.strip().startswith('Q') %}\n{{ m.role.upper() }}: {{ m.content.strip() }}\n  {% endif %}\n{% endfor %}\n{% if add_generation_prompt %}A:{% endif %}";
        let msgs = [ChatMessage::user("  Q1  "), ChatMessage::user("skip")];
        assert_eq!(render_str(src, &msgs, true).unwrap(), "USER: Q1\nA:");
        assert_eq!(render_str(src, &msgs, false).unwrap(), "USER: Q1\n");
        let src = "{% for m in messages %}{% if loop.index0 == 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}";
        assert_eq!(render_str(src, &msgs, true).unwrap(), "  Q1  ");
    }

    #[test]
    fn tojson_is_pythons_json_dumps() {
        let t = |src: &str| render_str(src, &[ChatMessage::new("user", "a<b>&'\"\n é 😀")], false).unwrap();
        assert_eq!(t("{{ messages[0] | tojson }}"), r#"{"role": "user", "content": "a<b>&'\"\n é 😀"}"#);
        assert_eq!(
            t("{{ messages[0] | tojson(ensure_ascii=true) }}"),
            r#"{"role": "user", "content": "a<b>&'\"\n \u00e9 \ud83d\ude00"}"#
        );
        assert_eq!(t("{{ {'b': [1, 2.5, none, true], 'a': {}} | tojson }}"), r#"{"b": [1, 2.5, null, true], "a": {}}"#);
        assert_eq!(t("{{ {'b': 1, 'a': [1]} | tojson(sort_keys=true) }}"), r#"{"a": [1], "b": 1}"#);
        assert_eq!(t("{{ {'a': [1, 2]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
        assert_eq!(t("{{ [1, 2] | tojson(separators=[',', ':']) }}"), "[1,2]");
        for (f, s) in
            [(1.0, "1.0"), (0.1, "0.1"), (1e-5, "1e-05"), (1e16, "1e+16"), (123.456, "123.456"), (-2.5e-7, "-2.5e-07")]
        {
            assert_eq!(python_float_repr(f), s);
        }
    }

    #[test]
    fn strftime_formats_utc() {
        // 2024-07-26 13:25:09 UTC, a Friday.
        let ts = 1_722_000_000 + 309;
        assert_eq!(strftime("%d %b %Y", ts), "26 Jul 2024");
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S %A %j %-d %B %p %%", ts), "2024-07-26 13:25:09 Friday 208 26 July PM %");
        let src = "{{ strftime_now('%Y') }}";
        let year: i32 = render_str(src, &[], false).unwrap().parse().unwrap();
        assert!(year >= 2024);
    }
}
