//! Citation-to-field mapping: for each field of a structured answer, the
//! citations whose text backs its value.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::result::Citation;

/// Field path → citations, plus warnings for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    /// Field path (`vendor.name`, `line_items[2].amount`) → backing citations.
    pub fields: BTreeMap<String, Vec<Citation>>,
    /// E.g. when most fields found no citation.
    pub warnings: Vec<String>,
}

/// Every scalar leaf of `value` with its path.
pub fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, p, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{path}[{i}]"), out);
                }
            }
            Value::Null => {}
            other => out.push((path, other.clone())),
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

/// Maps each field of `value` to the citations whose cited text contains it.
pub fn map_fields(value: &Value, citations: &[Citation]) -> Mapping {
    let mut mapping = Mapping::default();
    let fields = leaves(value);
    for (path, v) in &fields {
        let needle = match v {
            Value::String(s) => s.to_lowercase(),
            other => other.to_string(),
        };
        if needle.trim().is_empty() {
            continue;
        }
        let found: Vec<Citation> = citations
            .iter()
            .filter(|c| c.text.to_lowercase().contains(&needle))
            .map(|c| Citation {
                confidence: Some("medium".into()),
                match_reason: Some(format!("value '{needle}' found in cited text")),
                ..c.clone()
            })
            .collect();
        if !found.is_empty() {
            mapping.fields.insert(path.clone(), found);
        }
    }
    if !fields.is_empty() && mapping.fields.len() * 2 < fields.len() {
        mapping.warnings.push(format!(
            "{} of {} fields found no citation",
            fields.len() - mapping.fields.len(),
            fields.len()
        ));
    }
    mapping
}
