//! Model routing: which model may serve a request, under the policy's
//! `models` section.
//!
//! The primary model serves every request. A fallback model serves only
//! the requests its row allows: never a risk level it lists as disallowed,
//! for a request that names its feature only the features it lists (when
//! it lists any), and, when it has not
//! passed the service's evaluation suite, never a high-risk request nor any
//! request of a high or regulated service. A model the section does not
//! list serves nothing: nobody has said what it may do. A model whose row
//! asks for extra validation hands back a [`ModelGrant`] that releases an
//! answer only through [`ModelGrant::accept`], so the check cannot be
//! forgotten on the way.
//!
//! The fallback matrix ([`crate::fallback`]) asks [`admit`] before it hands
//! back an `alternate_model` row, and [`crate::repair`] before it falls back
//! to the repair model, so neither can route a request where the section
//! forbids it, whatever else the policy says.
//!
//! ```
//! use agent::routing::{ModelRefusal, ModelRequest, admit};
//! use agent::CompiledPolicy;
//! use shared::policy::{Policy, RiskTier};
//!
//! let policy = Policy::from_yaml(r#"
//! service: { name: rag, environment: prod, owner: me, risk_tier: medium,
//!            dependencies: { llm: { kind: model_provider } } }
//! models:
//!   primary: { model: large, dependency: llm, validated: true }
//!   fallbacks:
//!     - { model: small, dependency: llm, validated: false,
//!         allowed_features: [summary], disallowed_risk_levels: [high, regulated] }
//! "#).unwrap();
//! let policy = CompiledPolicy::compile(policy, Some(1), shared::protocol::PolicySource::Server);
//! let summary = ModelRequest::new().feature("summary");
//! assert!(admit(&policy, "small", &summary).is_ok());
//! assert_eq!(
//!     admit(&policy, "small", &summary.risk(RiskTier::High)),
//!     Err(ModelRefusal::DisallowedRisk(RiskTier::High))
//! );
//! assert!(admit(&policy, "small", &ModelRequest::new().feature("advice")).is_err());
//! ```

use crate::compiled::CompiledPolicy;
use shared::policy::RiskTier;

/// What a request tells model routing about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelRequest<'a> {
    /// The risk of the decision the answer feeds; absent, the service's
    /// own risk tier, so a request that says nothing is treated as risky
    /// as the service.
    pub risk: Option<RiskTier>,
    /// The feature the answer serves, such as `summary`. A request that
    /// names one is served only by models that list it (or list none). A
    /// request that names none is not feature-routed: feature names are
    /// the application's own, the agent cannot infer one, and refusing
    /// every unnamed request would quietly turn the documented fallbacks
    /// of a service that has not adopted feature names into refusals.
    /// Name the feature wherever a model's list should bind.
    pub feature: Option<&'a str>,
}

impl<'a> ModelRequest<'a> {
    /// A request that says nothing about itself.
    pub fn new() -> ModelRequest<'a> {
        ModelRequest::default()
    }
    /// Sets the risk of the decision the answer feeds.
    pub fn risk(mut self, risk: RiskTier) -> Self {
        self.risk = Some(risk);
        self
    }
    /// Sets the feature the answer serves.
    pub fn feature(mut self, feature: &'a str) -> Self {
        self.feature = Some(feature);
        self
    }
    /// The risk the request is judged at under `policy`.
    pub fn risk_under(&self, policy: &CompiledPolicy) -> RiskTier {
        self.risk.unwrap_or(policy.policy().service.risk_tier)
    }
}

/// Why a model may not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefusal {
    /// The `models` section does not list the model.
    #[error("the model is not listed in the policy's models section")]
    Unlisted,
    /// The model lists the request's risk level as one it must never serve.
    #[error("the model must never serve {0:?}-risk requests")]
    DisallowedRisk(RiskTier),
    /// The model serves only some features, and not the one the request
    /// named.
    #[error("the model may not serve feature `{0}`")]
    FeatureNotAllowed(String),
    /// The model is not validated, and the service or the request is high
    /// risk.
    #[error("an unvalidated model may not serve a high-risk request")]
    Unvalidated,
}

/// A model allowed to serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGrant {
    /// The model.
    pub model: String,
    /// The `model_provider` dependency that serves it.
    pub dependency: String,
    /// Whether its answers must pass extra validation before use.
    pub requires_additional_validation: bool,
}

/// An answer from a model that needs extra validation did not pass it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the answer of `{model}` failed its extra validation: {reason}")]
pub struct ExtraValidationFailed {
    /// The model.
    pub model: String,
    /// Why, in the check's words.
    pub reason: String,
}

impl ModelGrant {
    /// Releases `answer` for use: at once when the model needs no extra
    /// validation, else only if `check` passes. The answer of a model
    /// that needs the check never reaches the caller unchecked.
    pub fn accept<T>(
        &self,
        answer: T,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Result<T, ExtraValidationFailed> {
        if !self.requires_additional_validation {
            return Ok(answer);
        }
        match check(&answer) {
            Ok(()) => Ok(answer),
            Err(reason) => Err(ExtraValidationFailed {
                model: self.model.clone(),
                reason,
            }),
        }
    }
}

/// Whether `model` may serve `request` under `policy`'s `models` section.
pub fn admit(
    policy: &CompiledPolicy,
    model: &str,
    request: &ModelRequest<'_>,
) -> Result<ModelGrant, ModelRefusal> {
    let doc = policy.policy();
    let routing = doc.models.as_ref().ok_or(ModelRefusal::Unlisted)?;
    if routing.primary.model == model {
        // The primary is what the service runs on; its validation is the
        // publish's business (validation warns), not a per-request one.
        return Ok(ModelGrant {
            model: model.to_owned(),
            dependency: routing.primary.dependency.clone(),
            requires_additional_validation: false,
        });
    }
    let f = routing
        .fallbacks
        .iter()
        .find(|f| f.model == model)
        .ok_or(ModelRefusal::Unlisted)?;
    let risk = request.risk_under(policy);
    if f.disallowed_risk_levels.contains(&risk) {
        return Err(ModelRefusal::DisallowedRisk(risk));
    }
    if let Some(want) = request.feature
        && !f.allowed_features.is_empty()
        && !f.allowed_features.iter().any(|a| a == want)
    {
        return Err(ModelRefusal::FeatureNotAllowed(want.to_owned()));
    }
    let high = |tier: RiskTier| tier >= RiskTier::High;
    if !f.validated && (high(doc.service.risk_tier) || high(risk)) {
        return Err(ModelRefusal::Unvalidated);
    }
    Ok(ModelGrant {
        model: f.model.clone(),
        dependency: f.dependency.clone(),
        requires_additional_validation: f.requires_additional_validation,
    })
}

/// The first fallback model, in the policy's order of preference, that may
/// serve `request`; `None` when none may.
pub fn fallback_model(policy: &CompiledPolicy, request: &ModelRequest<'_>) -> Option<ModelGrant> {
    let routing = policy.policy().models.as_ref()?;
    routing
        .fallbacks
        .iter()
        .find_map(|f| admit(policy, &f.model, request).ok())
}
