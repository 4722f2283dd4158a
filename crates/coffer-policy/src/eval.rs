//! Statement and policy evaluation.

use crate::glob::{is_match_all, match_str, match_toks};
use crate::{
    ActionBlock, Decision, Effect, Matched, Policy, PolicyKind, PrincipalMatch, Request,
    ResourceBlock, Statement,
};

pub(crate) fn action_matches(block: &ActionBlock, action: &str) -> bool {
    let lower = action.to_lowercase();
    let any = block.patterns.iter().any(|p| match_str(p, &lower));
    any != block.negated
}

/// `Resource`: some entry matches (unresolvable entries do not match).
/// `NotResource`: no entry matches; an unresolvable entry makes the
/// statement not apply.
fn resource_matches(block: Option<&ResourceBlock>, req: &Request<'_>) -> bool {
    let Some(block) = block else {
        return true;
    };
    let chars: Vec<char> = req.resource.chars().collect();
    let mut any = false;
    for p in &block.patterns {
        match p.resolve(req.context) {
            Some(toks) => {
                if is_match_all(&toks) || match_toks(&toks, &chars) {
                    any = true;
                    if !block.negated {
                        break;
                    }
                }
            }
            None => {
                if block.negated {
                    return false;
                }
            }
        }
    }
    any != block.negated
}

/// Whether the statement applies to the request. `Some(pm)` = applies, with
/// the principal match (`None` inside for identity policies).
fn statement_applies(
    st: &Statement,
    kind: PolicyKind,
    req: &Request<'_>,
) -> Option<Option<PrincipalMatch>> {
    let principal_match = match (kind, &st.principal) {
        (PolicyKind::Identity, _) | (_, None) => None,
        (_, Some(block)) => {
            let m = block.set.match_principal(req.principal.as_ref());
            if block.negated {
                match m {
                    Some(_) => return None,
                    None => Some(PrincipalMatch::Wildcard),
                }
            } else {
                Some(m?)
            }
        }
    };
    if !action_matches(&st.actions, req.action) {
        return None;
    }
    if !resource_matches(st.resources.as_ref(), req) {
        return None;
    }
    if !st.conditions.iter().all(|c| c.evaluate(req.context)) {
        return None;
    }
    Some(principal_match)
}

impl Statement {
    /// Whether this statement applies to `req` when it belongs to a policy of
    /// `kind` (principal, action, resource and every condition match).
    pub fn applies(&self, kind: PolicyKind, req: &Request<'_>) -> Option<Matched> {
        statement_applies(self, kind, req).map(|principal_match| Matched {
            statement_index: self.index,
            sid: self.sid.clone(),
            principal_match,
        })
    }
}

impl Policy {
    /// Evaluate this policy alone: any matching `Deny` ⇒ `ExplicitDeny` (the
    /// first one); else the first matching `Allow` ⇒ `Allow`; else
    /// `ImplicitDeny`. For identity policies `Principal` is not considered;
    /// for resource/trust policies statements apply only when the principal
    /// matches.
    pub fn evaluate(&self, req: &Request) -> Decision {
        let mut first_allow = None;
        for st in &self.statements {
            if let Some(m) = st.applies(self.kind, req) {
                match st.effect {
                    Effect::Deny => return Decision::ExplicitDeny(m),
                    Effect::Allow => {
                        if first_allow.is_none() {
                            first_allow = Some(m);
                        }
                    }
                }
            }
        }
        first_allow.map_or(Decision::ImplicitDeny, Decision::Allow)
    }

    /// Every `Allow` statement that matches the request (ignores denies).
    pub fn matching_allows(&self, req: &Request) -> Vec<Matched> {
        self.statements
            .iter()
            .filter(|st| st.effect == Effect::Allow)
            .filter_map(|st| st.applies(self.kind, req))
            .collect()
    }

    /// Every `Deny` statement that matches the request.
    pub fn matching_denies(&self, req: &Request) -> Vec<Matched> {
        self.statements
            .iter()
            .filter(|st| st.effect == Effect::Deny)
            .filter_map(|st| st.applies(self.kind, req))
            .collect()
    }
}

/// Combine several policies (e.g. all identity policies of a user): an
/// explicit deny in any policy wins (the first found), else the first allow,
/// else implicit deny.
pub fn evaluate_all<'p>(policies: impl IntoIterator<Item = &'p Policy>, req: &Request) -> Decision {
    let mut first_allow = None;
    for p in policies {
        match p.evaluate(req) {
            d @ Decision::ExplicitDeny(_) => return d,
            Decision::Allow(m) => {
                if first_allow.is_none() {
                    first_allow = Some(m);
                }
            }
            Decision::ImplicitDeny => {}
        }
    }
    first_allow.map_or(Decision::ImplicitDeny, Decision::Allow)
}
