//! The training view of a step's rollout: the completions that compete with each other, with
//! their sampler log-probs and rewards.

use super::StepRollout;
use crate::judging::Category;
use crate::llm::ChatRequest;

/// A completion with its sampler log-probs and reward (a member of a training group).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The completion's token ids (prefill excluded; prompt not included).
    pub token_ids: Vec<i64>,
    /// Sampler log-probability of each token in `token_ids`, same length.
    pub logprobs: Vec<f32>,
    /// The member's reward; `None` when it has none (excluded or every judgment failed).
    pub reward: Option<f32>,
}

/// Completions of one prompt that compete with each other: the D replies to one x (defender)
/// or the A attacks on one seed (attacker).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The seed category of the group.
    pub category: Category,
    /// The request the members answer (the attacker's instruction, or x as the single user
    /// turn for the defender).
    pub request: ChatRequest,
    /// The competing completions.
    pub members: Vec<Member>,
}

impl Group {
    /// Each member's reward, in member order.
    pub fn rewards(&self) -> Vec<Option<f32>> {
        self.members.iter().map(|m| m.reward).collect()
    }
}
impl StepRollout {
    /// The defender's groups: the replies to each valid prompt.
    pub fn defender_groups(&self) -> Vec<Group> {
        let mut out = Vec::new();
        for tree in &self.trees {
            for attack in &tree.attacks {
                if attack.replies.is_empty() {
                    continue;
                }
                let request = ChatRequest::user(attack.rewrite.prompt.clone().unwrap_or_default());
                let members = attack
                    .replies
                    .iter()
                    .map(|r| Member {
                        token_ids: r.sample.token_ids.clone(),
                        logprobs: r.sample.logprobs.clone(),
                        reward: r.reward,
                    })
                    .collect();
                out.push(Group { category: tree.seed.category, request, members });
            }
        }
        out
    }

    /// The attacker's groups: the attacks on each seed (the think part included); seeds the
    /// defender answered as written have none.
    pub fn attacker_groups(&self) -> Vec<Group> {
        self.trees
            .iter()
            .filter(|tree| !tree.direct)
            .map(|tree| Group {
                category: tree.seed.category,
                request: tree.request.clone(),
                members: tree
                    .attacks
                    .iter()
                    .map(|a| Member {
                        token_ids: a.sample.token_ids.clone(),
                        logprobs: a.sample.logprobs.clone(),
                        reward: a.reward,
                    })
                    .collect(),
            })
            .collect()
    }
}
