//! Differences between two versions of a definition, as a list of changes at JSON paths
//! (`fields.3.label`, `statuses.1.items.0.target`), for the administrators' history.

use serde_json::Value;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where, as a dotted path (list positions are numbers).
    pub path: String,
    /// The value before (absent when added).
    pub before: Option<Value>,
    /// The value after (absent when removed).
    pub after: Option<Value>,
}

/// The changes from `before` to `after`, by path (keys sorted, list positions in order);
/// version numbers are not changes.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out.retain(|c| c.path != "version");
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") }
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                match b.get(k) {
                    Some(vb) => walk(&join(path, k), va, vb, out),
                    None => out.push(Change {
                        path: join(path, k),
                        before: Some(va.clone()),
                        after: None,
                    }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(Change { path: join(path, k), before: None, after: Some(vb.clone()) });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = join(path, &i.to_string());
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => walk(&p, va, vb, out),
                    (Some(va), None) => {
                        out.push(Change { path: p, before: Some(va.clone()), after: None })
                    }
                    (None, Some(vb)) => {
                        out.push(Change { path: p, before: None, after: Some(vb.clone()) })
                    }
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => {
            out.push(Change {
                path: path.to_owned(),
                before: Some(a.clone()),
                after: Some(b.clone()),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn changes_are_listed_by_path() {
        let before = json!({ "version": 1, "title": "A", "fields": [{ "id": "x", "label": "X" }] });
        let after = json!({ "version": 2, "title": "B", "fields": [{ "id": "x", "label": "X!" }, { "id": "y" }], "hint": "h" });
        let paths: Vec<String> = diff(&before, &after).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["fields.0.label", "fields.1", "title", "hint"]);
        assert!(diff(&before, &before).is_empty());
    }
}
