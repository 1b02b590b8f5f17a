//! The OpenAI HTTP API's JSON shapes, in one place for both sides: `serve` parses requests
//! and writes responses with these types, the remote generator writes requests and parses
//! responses with the same ones, so the two cannot drift apart.
//!
//! Field names and meanings follow the OpenAI API reference (Chat Completions, Completions,
//! Models, error objects). Two extra chat parameters come from vLLM's OpenAI-compatible
//! server: `add_generation_prompt` (default true) and `continue_final_message` (default
//! false; "the final message in the chat is open-ended, without any EOS tokens ... Cannot be
//! used at the same time as `add_generation_prompt`"). Unknown request fields are ignored,
//! as OpenAI-compatible servers do; optional fields are left out when unset so that strict
//! servers never see a `null` they did not expect.

use serde::{Deserialize, Serialize};

/// `stop`: one string or a list of up to 4 (OpenAI's limit; we accept more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string (`"stop": "\n\n"`).
    One(String),
    /// A list of stop strings (`"stop": ["</s>", "\n\n"]`).
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings as a list, whichever shape the JSON used. Empty strings are kept here;
    /// `serve` drops them (an empty stop would end every generation at once).
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// One content part of a message (`{"type": "text", "text": ...}`); other part types
/// (images, audio) are rejected by the server with a 400.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentPart {
    /// The part's `type`: `text` is the only one the server reads; `image_url`, `input_audio`
    /// and `file` parts are rejected.
    #[serde(rename = "type")]
    pub kind: String,
    /// The part's text, present when `type` is `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A message's `content`: a string, or a list of content parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain string content (`"content": "Hello"`).
    Text(String),
    /// A list of typed content parts; the text parts are concatenated in order.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// The text of the content, or the type of the first part that is not text.
    pub fn text(&self) -> Result<String, String> {
        match self {
            Content::Text(s) => Ok(s.clone()),
            Content::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => out.push_str(t),
                        (kind, _) => return Err(kind.to_string()),
                    }
                }
                Ok(out)
            }
        }
    }
}

/// One chat message: `role` is `system`, `developer` (OpenAI's newer name for system),
/// `user` or `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote the message: `system`, `developer`, `user` or `assistant` (OpenAI API reference,
    /// Chat Completions `messages[].role`). The chat template decides how each role is rendered.
    pub role: String,
    /// The message text; `None` when the JSON has `null` or no `content` (OpenAI allows that for
    /// assistant messages that only carry tool calls, which we do not support).
    #[serde(default)]
    pub content: Option<Content>,
}

impl ChatMessage {
    /// A message whose content is a plain string, e.g. `ChatMessage::new("user", "hi")`.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: Some(Content::Text(content.into())) }
    }
}

/// `stream_options`: `include_usage` adds a last chunk with token counts before `[DONE]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// When true, the stream ends with one extra chunk whose `choices` is empty and whose `usage`
    /// holds the token counts of the whole request (OpenAI `stream_options.include_usage`).
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/chat/completions` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model to use: the name `serve` was started with (see `GET /v1/models`). Optional here
    /// (OpenAI requires it) because a single-model server has only one answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation so far, oldest first. The server renders it with the model's chat
    /// template (`tokenizer_config.json` `chat_template`).
    pub messages: Vec<ChatMessage>,
    /// Deprecated by OpenAI in favour of `max_completion_tokens`; both are honoured (the
    /// newer one wins when both are set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Upper bound on generated tokens for each choice, not counting the prompt (OpenAI's current
    /// name for `max_tokens`). `None`: the rest of the context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    /// 0 to 2 (OpenAI's range); 0 is greedy. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// In (0, 1]. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Completions per request. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Sampling seed, for repeatable samples (OpenAI: best effort). Signed in OpenAI's
    /// schema: `serve` uses its 64 bits as an unsigned seed and decodes requests with
    /// different seeds in different batches. `None`: a random seed drawn for the decode
    /// batch the request joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Strings that end a choice when generated; the matched stop string is not returned
    /// (OpenAI: up to 4 sequences; `serve` accepts up to 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// `true`: answer as server-sent events (`data: {chunk}` lines ending with `data: [DONE]`)
    /// instead of one JSON body. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options; only read when `stream` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// vLLM extra parameter (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
    /// vLLM extra parameter (default false): continue the final (assistant) message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,
}

/// `prompt` of the Completions API: one string or a batch of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt string: one choice (times `n`).
    One(String),
    /// A batch of prompt strings: `n` choices for each, indexed prompt-major
    /// (`index = prompt * n + k`).
    Many(Vec<String>),
}

/// `POST /v1/completions` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model to use (see [`ChatCompletionRequest::model`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The raw text to continue, no chat template applied. Required by `serve`; `None` only so
    /// that a missing field gets a precise 400 instead of a serde error.
    pub prompt: Option<Prompt>,
    /// Default 16 (OpenAI's default for this endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    /// Sampling temperature, 0 to 2 (OpenAI's range); 0 is greedy. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: keep the smallest set of tokens whose probability mass reaches `top_p`,
    /// in (0, 1]. Default 1 (off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Completions per prompt. Default 1; `serve` allows `prompts x n` up to 128 choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// Sampling seed (see [`ChatCompletionRequest::seed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Stop strings (see [`ChatCompletionRequest::stop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Stream the answer as server-sent events (see [`ChatCompletionRequest::stream`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options; only read when `stream` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// vLLM extra parameter (default true): add the tokenizer's special tokens (e.g. BOS)
    /// to the prompt. False for prompts already rendered with a chat template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_special_tokens: Option<bool>,
}

/// Token counts of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt(s), after the chat template and special tokens were applied; counted
    /// once per prompt, not once per choice.
    pub prompt_tokens: u64,
    /// Tokens generated over all choices, stop strings included up to the stop.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
}

/// The assistant message of a chat choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant` in answers from `serve`.
    pub role: String,
    /// The generated text; `None` only in answers from other servers (e.g. a refusal or tool
    /// call without text).
    #[serde(default)]
    pub content: Option<String>,
}

/// One chat completion choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position of this choice in `choices`, 0 to `n - 1`.
    pub index: u32,
    /// The generated assistant message.
    pub message: AssistantMessage,
    /// `stop` or `length` (others, e.g. `content_filter`, may come from other servers).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Per-token log-probabilities (OpenAI `logprobs` object). `serve` never computes them and
    /// writes `null`; kept as raw JSON when another server sends them.
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// `chat.completion` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// Response id, `chatcmpl-` followed by random characters.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Creation time in seconds since the Unix epoch.
    pub created: u64,
    /// The model that answered (the name `serve` was started with).
    pub model: String,
    /// One choice per requested completion (`n`), in index order.
    pub choices: Vec<ChatChoice>,
    /// Token counts of the whole request.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The incremental message of a streamed chat chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant` in the first chunk of each choice, absent afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The next piece of generated text: empty in a choice's first (role) chunk, absent in its
    /// last (finish) chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One choice of a `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which choice this piece belongs to, 0 to `n - 1`.
    pub index: u32,
    /// The new text of this chunk.
    pub delta: Delta,
    /// `None` until the choice's last chunk, then `stop` or `length` (see
    /// [`ChatChoice::finish_reason`]).
    pub finish_reason: Option<String>,
    /// Per-token log-probabilities; always `null` from `serve`.
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// `chat.completion.chunk`: one server-sent event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Response id, the same in every chunk of one stream (`chatcmpl-...`).
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Creation time in seconds since the Unix epoch, the same in every chunk.
    pub created: u64,
    /// The model that answers.
    pub model: String,
    /// The choices this chunk advances; empty in the final usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Token counts; only in the final chunk, and only when `stream_options.include_usage` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a `text_completion` (also one streamed chunk's choice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Position of this choice: `prompt * n + k` for a batch of prompts.
    pub index: u32,
    /// The generated text (the piece generated since the last chunk, when streaming).
    pub text: String,
    /// `stop` (a stop string or EOS token) or `length` (`max_tokens` reached); `None` in stream
    /// chunks before the last one.
    pub finish_reason: Option<String>,
    /// Per-token log-probabilities; always `null` from `serve`.
    #[serde(default)]
    pub logprobs: Option<serde_json::Value>,
}

/// `text_completion` response (and streamed chunk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Response id, `cmpl-` followed by random characters.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Creation time in seconds since the Unix epoch.
    pub created: u64,
    /// The model that answered.
    pub model: String,
    /// One choice per prompt and `n`, in index order.
    pub choices: Vec<CompletionChoice>,
    /// Token counts of the whole request (always in a full response; in a stream only in the
    /// final chunk with `stream_options.include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The model's name, the value to pass as `model` in requests.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// When the model was loaded, in seconds since the Unix epoch.
    pub created: u64,
    /// The organisation that owns the model; `serve` writes `advgame-host`.
    pub owned_by: String,
    /// vLLM's extension: the context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u64>,
}

/// `GET /v1/models` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models the server offers (one for `serve`).
    pub data: Vec<ModelCard>,
}

/// The body of every error response: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// OpenAI's error object. `type` is e.g. `invalid_request_error`, `authentication_error`,
/// `rate_limit_error`, `server_error`; `param` names the offending request field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A sentence for humans saying what was wrong and what was expected.
    pub message: String,
    /// The error class (OpenAI's `type`), e.g. `invalid_request_error` for a 400.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The request field at fault, e.g. `temperature`, when there is one.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code (a string or a number, depending on the server); `serve` writes
    /// `null`.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}

/// Seconds since the Unix epoch (the `created` field).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_without_nulls() {
        let req = ChatCompletionRequest {
            model: Some("m".into()),
            messages: vec![ChatMessage::new("user", "hi")],
            max_tokens: Some(5),
            ..Default::default()
        };
        let text = serde_json::to_string(&req).unwrap();
        assert!(!text.contains("null"), "{text}");
        let back: ChatCompletionRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn stop_and_content_accept_both_shapes() {
        let r: ChatCompletionRequest = serde_json::from_str(
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"stop":"x"}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].content.as_ref().unwrap().text().unwrap(), "ab");
        assert_eq!(r.stop.unwrap().into_vec(), vec!["x".to_string()]);
        let r: ChatCompletionRequest =
            serde_json::from_str(r#"{"messages":[],"stop":["x","y"]}"#).unwrap();
        assert_eq!(r.stop.unwrap().into_vec().len(), 2);
        let parts = Content::Parts(vec![ContentPart { kind: "image_url".into(), text: None }]);
        assert_eq!(parts.text().unwrap_err(), "image_url");
    }

    #[test]
    fn error_body_has_the_openai_shape() {
        let e = ErrorBody {
            error: ErrorDetail {
                message: "m".into(),
                kind: Some("invalid_request_error".into()),
                param: Some("n".into()),
                code: None,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "n");
        assert!(v["error"]["code"].is_null());
    }
}
