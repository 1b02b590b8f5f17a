//! A loaded rubric plugin: prompt building and output parsing behind the sandbox, with the
//! host's checks on everything it returns.

use super::bindings::rubric::RubricPlugin as Bindings;
use super::bindings::{Chat, ScoreRange};
use super::engine::PluginEngine;
use super::identity::WorldKind;
use super::load::LoadError;
use super::open::{adopt_info, open};
use super::sandbox::{Sandbox, sandbox_accessors};
use super::services::from_wit;
use crate::judging::{Failure, FailureKind};
use crate::llm::ChatRequest;
use std::path::Path;

/// A rubric component, ready to render prompts and parse judge-model outputs.
pub struct RubricPlugin {
    sandbox: Sandbox<Bindings>,
    range: (f32, f32),
}

impl std::fmt::Debug for RubricPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RubricPlugin")
            .field("plugin", &self.sandbox.identity.label())
            .field("range", &self.range)
            .finish()
    }
}

impl RubricPlugin {
    /// Loads a `rubric-plugin` component; `config` is what its `host.config()` returns.
    pub fn load(
        engine: &PluginEngine,
        path: &Path,
        config: Vec<(String, String)>,
    ) -> Result<Self, LoadError> {
        let mut sandbox: Sandbox<Bindings> = open(engine, path, WorldKind::Rubric, config, |_| {})?;
        let info = sandbox.call("info", |b, s| b.advgame_plugin_rubric().call_info(s));
        adopt_info(engine, &mut sandbox, info)?;
        let range = sandbox.call("range", |b, s| b.advgame_plugin_rubric().call_range(s));
        let range = match range {
            Ok(ScoreRange { min, max }) if min.is_finite() && max.is_finite() && min < max => {
                (min, max)
            }
            Ok(ScoreRange { min, max }) => {
                engine.count_load_failure("not_a_plugin");
                return Err(LoadError::NotAPlugin {
                    path: path.into(),
                    message: format!("range() returned [{min}, {max}]: need finite min < max"),
                });
            }
            Err(failure) => {
                engine.count_load_failure("start");
                return Err(LoadError::Start { path: path.into(), failure });
            }
        };
        Ok(Self { sandbox, range })
    }

    sandbox_accessors!();

    /// The name judges use to reach this rubric.
    pub fn name(&self) -> &str {
        &self.sandbox.identity.name
    }

    /// Inclusive score range.
    pub fn range(&self) -> (f32, f32) {
        self.range
    }

    fn check_chat(&mut self, chat: Chat) -> Result<ChatRequest, Failure> {
        let cap = self.sandbox.state().limits.max_string_bytes;
        let size = chat.user.len()
            + chat.system.as_ref().map_or(0, String::len)
            + chat.prefill.as_ref().map_or(0, String::len);
        if size > cap {
            self.sandbox.count(FailureKind::Oversize, 1);
            return Err(self.sandbox.fail(
                FailureKind::Oversize,
                format!("prompt of {size} bytes is over the {cap}-byte cap"),
            ));
        }
        Ok(ChatRequest { system: chat.system, user: chat.user, prefill: chat.prefill })
    }

    fn check_score(&mut self, what: &str, x: f32) -> Result<f32, Failure> {
        let (min, max) = self.range;
        if x.is_finite() && (min..=max).contains(&x) {
            return Ok(x);
        }
        self.sandbox.count(FailureKind::InvalidOutput, 1);
        Err(self.sandbox.fail(
            FailureKind::InvalidOutput,
            format!("{what} returned score {x}, outside the rubric's range [{min}, {max}]"),
        ))
    }

    fn reported(&mut self, failure: super::bindings::WitFailure) -> Failure {
        let cap = self.sandbox.state().limits.max_string_bytes;
        let f = from_wit(failure, self.sandbox.identity.label(), cap);
        self.sandbox.count(f.kind, 1);
        f
    }

    /// The judge-model request comparing `a` and `b`.
    pub fn pairwise_prompt(
        &mut self,
        context: &str,
        a: &str,
        b: &str,
    ) -> Result<ChatRequest, Failure> {
        let chat = self.sandbox.call("pairwise-prompt", |bn, s| {
            bn.advgame_plugin_rubric().call_pairwise_prompt(s, context, a, b)
        })?;
        self.check_chat(chat)
    }

    /// Scores (a, b) from a judge-model output, checked to be finite and in range.
    pub fn parse_pairwise(&mut self, output: &str) -> Result<(f32, f32), Failure> {
        let r = self.sandbox.call("parse-pairwise", |bn, s| {
            bn.advgame_plugin_rubric().call_parse_pairwise(s, output)
        })?;
        match r {
            Ok((a, b)) => {
                Ok((self.check_score("parse-pairwise", a)?, self.check_score("parse-pairwise", b)?))
            }
            Err(f) => Err(self.reported(f)),
        }
    }

    /// The judge-model request scoring `response` alone in `context`; a prompt over the
    /// host's string cap is an [`FailureKind::Oversize`] failure.
    pub fn pointwise_prompt(
        &mut self,
        context: &str,
        response: &str,
    ) -> Result<ChatRequest, Failure> {
        let chat = self.sandbox.call("pointwise-prompt", |bn, s| {
            bn.advgame_plugin_rubric().call_pointwise_prompt(s, context, response)
        })?;
        self.check_chat(chat)
    }

    /// The score from a judge-model output of the pointwise prompt, checked to be finite and
    /// in the rubric's range (else [`FailureKind::InvalidOutput`]).
    pub fn parse_pointwise(&mut self, output: &str) -> Result<f32, Failure> {
        let r = self.sandbox.call("parse-pointwise", |bn, s| {
            bn.advgame_plugin_rubric().call_parse_pointwise(s, output)
        })?;
        match r {
            Ok(x) => self.check_score("parse-pointwise", x),
            Err(f) => Err(self.reported(f)),
        }
    }
}
