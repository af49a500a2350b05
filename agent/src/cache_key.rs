//! Cache keys that cannot leak: the builder refuses to make a key without
//! every part the policy makes mandatory (tenant, security context, and
//! the index, prompt, model and normalisation versions at least).

use crate::compiled::CompiledPolicy;
use sha2::{Digest, Sha256};
use shared::policy::CacheKeyPart;
use std::collections::BTreeMap;

/// A cache key: the SHA-256 of its parts, so that keys are fixed-length and
/// do not reveal the query or the tenant to whoever reads the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key in hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parts the policy requires are missing (or empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cache key lacks {missing:?}")]
pub struct MissingCacheKeyParts {
    /// The missing parts.
    pub missing: Vec<CacheKeyPart>,
}

/// Builds a [`CacheKey`] under one policy version.
#[derive(Debug, Clone)]
pub struct CacheKeyBuilder<'p> {
    required: &'p [CacheKeyPart],
    parts: BTreeMap<CacheKeyPart, String>,
}

impl<'p> CacheKeyBuilder<'p> {
    /// A builder requiring what `policy` requires.
    pub fn new(policy: &'p CompiledPolicy) -> CacheKeyBuilder<'p> {
        CacheKeyBuilder {
            required: policy.cache_key_parts(),
            parts: BTreeMap::new(),
        }
    }

    /// Sets a part.
    pub fn part(mut self, part: CacheKeyPart, value: impl Into<String>) -> Self {
        self.parts.insert(part, value.into());
        self
    }

    /// The key, or the parts still missing. An empty value is missing: an
    /// empty tenant would put every tenant in one partition.
    pub fn build(&self) -> Result<CacheKey, MissingCacheKeyParts> {
        let missing: Vec<CacheKeyPart> = self
            .required
            .iter()
            .filter(|p| self.parts.get(p).is_none_or(|v| v.is_empty()))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(MissingCacheKeyParts { missing });
        }
        let mut h = Sha256::new();
        for (part, value) in &self.parts {
            // Length-prefixed, so that parts cannot run into each other.
            h.update(part.as_str().as_bytes());
            h.update((value.len() as u64).to_be_bytes());
            h.update(value.as_bytes());
        }
        Ok(CacheKey(
            h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_the_mandatory_parts_is_refused() {
        let policy = CompiledPolicy::conservative_default("svc", "test");
        let b = CacheKeyBuilder::new(&policy)
            .part(CacheKeyPart::Tenant, "t1")
            .part(CacheKeyPart::SecurityContext, "")
            .part(CacheKeyPart::Query, "q");
        let err = b.build().unwrap_err();
        assert_eq!(
            err.missing,
            vec![
                CacheKeyPart::SecurityContext,
                CacheKeyPart::IndexVersion,
                CacheKeyPart::PromptVersion,
                CacheKeyPart::ModelVersion,
                CacheKeyPart::NormalizationVersion,
            ]
        );
        let full = b
            .part(CacheKeyPart::SecurityContext, "h")
            .part(CacheKeyPart::IndexVersion, "1")
            .part(CacheKeyPart::PromptVersion, "1")
            .part(CacheKeyPart::ModelVersion, "1")
            .part(CacheKeyPart::NormalizationVersion, "1");
        let k1 = full.build().unwrap();
        let k2 = full
            .clone()
            .part(CacheKeyPart::Tenant, "t2")
            .build()
            .unwrap();
        assert_ne!(k1, k2, "tenants never share a key");
        assert_eq!(k1.as_str().len(), 64);
    }
}
