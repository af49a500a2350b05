//! Map deserialisation that refuses duplicate keys.
//!
//! JSON parsers and serde's own `BTreeMap` impl keep the last of two equal
//! keys without a word. In a policy that would silently drop, say, the first
//! of two `model_provider` retry policies, so every map in the model goes
//! through here instead.

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// Deserialises a map, failing on the first key seen twice.
pub(crate) fn map<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + Serialize,
    V: Deserialize<'de>,
{
    struct UniqueVisitor<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for UniqueVisitor<K, V>
    where
        K: Deserialize<'de> + Ord + Serialize,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map with unique keys")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = access.next_key::<K>()? {
                if out.contains_key(&key) {
                    // The key as it was written (`batch_eval`, not `BatchEval`).
                    let name = match serde_json::to_value(&key) {
                        Ok(serde_json::Value::String(name)) => name,
                        Ok(other) => other.to_string(),
                        Err(_) => String::from("?"),
                    };
                    return Err(A::Error::custom(format_args!("duplicate key `{name}`")));
                }
                let value = access.next_value::<V>()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(UniqueVisitor(PhantomData))
}
