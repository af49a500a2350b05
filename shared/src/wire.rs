//! Enums that travel as names: each carries every variant (`ALL`), its wire
//! name and a label for people, in one place.
//!
//! The dashboard's pickers, the agent's telemetry and the server's metrics
//! iterate `ALL` instead of writing the variants out again, so a new variant
//! shows up everywhere at once, and the wire name is read off the enum
//! rather than round-tripped through serde.

/// A unit-only enum whose variants travel by name.
///
/// Generic code (a picker over any such enum, a counter per variant) takes
/// `T: WireEnum`; concrete code reads the inherent `ALL`, `as_str` and
/// `label` that [`wire_enum!`](crate::wire_enum) generates.
pub trait WireEnum: Copy + Eq + 'static {
    /// Every variant, in declaration order.
    fn all() -> &'static [Self];
    /// The name on the wire and in policy files, as in `rate_limited`.
    fn wire_name(self) -> &'static str;
    /// A short name for people, as in `Rate limited`.
    fn label(self) -> &'static str;
    /// The variant with this wire name.
    fn from_wire_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|v| v.wire_name() == name)
    }
}

/// Declares a unit-only enum together with its `ALL`, wire names and labels.
///
/// Each variant is written `Name => ("wire_name", "Label")`. Serde's
/// `rename_all` must agree with the wire names; a test in this module holds
/// every wire enum of the crate to that.
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident => ($wire:literal, $label:literal)
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// (wire name, label) of every variant, as a picker offers them.
            pub const OPTIONS: [(&'static str, &'static str); [$(stringify!($variant)),+].len()] =
                [$(($wire, $label)),+];

            /// The wire name, as policy files and the API spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            /// A short name for people.
            pub const fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The variant with this wire name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|v| v.as_str() == name)
            }
        }

        impl $crate::wire::WireEnum for $name {
            fn all() -> &'static [Self] {
                &Self::ALL
            }
            fn wire_name(self) -> &'static str {
                self.as_str()
            }
            fn label(self) -> &'static str {
                $name::label(self)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::WireEnum;
    use crate::api::InstanceStatus;
    use crate::policy::*;
    use crate::protocol::{ActionOutcome, BreakerState, DlqActionKind, PolicySource};
    use crate::role::Role;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use std::collections::HashSet;
    use std::fmt::Debug;

    /// Serde and the declared wire names agree both ways, and no two
    /// variants share a name or a label.
    fn agrees<T: WireEnum + Serialize + DeserializeOwned + Debug>() {
        let mut names = HashSet::new();
        let mut labels = HashSet::new();
        for &v in T::all() {
            let json = serde_json::to_value(v).unwrap();
            assert_eq!(json.as_str(), Some(v.wire_name()), "{v:?}");
            let back: T = serde_json::from_value(json).unwrap();
            assert_eq!(back, v);
            assert_eq!(T::from_wire_name(v.wire_name()), Some(v));
            assert!(names.insert(v.wire_name()), "{v:?}: duplicate wire name");
            assert!(labels.insert(v.label()), "{v:?}: duplicate label");
        }
        assert_eq!(T::from_wire_name("no_such_variant"), None);
    }

    #[test]
    fn every_wire_enum_agrees_with_serde() {
        agrees::<Role>();
        agrees::<RiskTier>();
        agrees::<DependencyKind>();
        agrees::<Jitter>();
        agrees::<ErrorClass>();
        agrees::<Effect>();
        agrees::<ForcedState>();
        agrees::<PartitionKey>();
        agrees::<PriorityClass>();
        agrees::<AdmissionMode>();
        agrees::<FailureType>();
        agrees::<DegradedStatus>();
        agrees::<RepairFailure>();
        agrees::<SourceFailure>();
        agrees::<DegradedModeAction>();
        agrees::<CacheKeyPart>();
        agrees::<Sensitivity>();
        agrees::<IdempotencyKeyPart>();
        agrees::<KeyReuse>();
        agrees::<Prohibition>();
        agrees::<PolicySource>();
        agrees::<BreakerState>();
        agrees::<DlqActionKind>();
        agrees::<ActionOutcome>();
        agrees::<InstanceStatus>();
        agrees::<crate::policy::SafetyViolation>();
    }
}
