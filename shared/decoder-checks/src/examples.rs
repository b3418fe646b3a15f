//! A plausible JSON value for a JSON Schema of `contracts::schema::all`: every property
//! (optional ones too), the first variant of a choice, one item per array, and strings that
//! look like what the field holds (an ID number for `id_number`, a month for `month`, an
//! amount for `amount`). Seeds for the fuzzers and the property tests, which mutate them:
//! nearly all decode as their type (a test holds that), so the mutations start deep.

use serde_json::{Map, Value, json};

/// A valid resident ID number (GB 11643), credit code (GB 32100) and phone.
pub const ID_NUMBER: &str = "11010519491231002X";
pub const CREDIT_CODE: &str = "91350100M000100Y43";
pub const PHONE: &str = "13812345678";

/// An example value of `schema` (a whole schema document, with its `$defs`).
pub fn example(schema: &Value) -> Value {
    value(schema, schema, None, 0)
}

/// Every body type's example, by the registry's file name (the order of
/// [`crate::bodies::types`]). Made once.
pub fn all() -> &'static [(String, Value)] {
    static ALL: std::sync::OnceLock<Vec<(String, Value)>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        contracts::schema::all()
            .into_iter()
            .map(|(file, schema)| {
                let v = example(&schema);
                (file, v)
            })
            .collect()
    })
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let path = reference.strip_prefix("#")?;
    root.pointer(path)
}

fn value(root: &Value, s: &Value, field: Option<&str>, depth: u32) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let Some(obj) = s.as_object() else {
        return Value::Null; // `true`: anything
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        return match resolve(root, r) {
            Some(target) => value(root, target, field, depth + 1),
            None => Value::Null,
        };
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    for choice in ["oneOf", "anyOf"] {
        if let Some(variants) = obj.get(choice).and_then(Value::as_array) {
            let pick = variants
                .iter()
                .find(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .or(variants.first());
            if let Some(v) = pick {
                let mut out = value(root, v, field, depth + 1);
                merge(&mut out, own_properties(root, obj, depth));
                return out;
            }
        }
    }
    if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
        let mut out = Value::Object(Map::new());
        for p in parts {
            merge(&mut out, value(root, p, field, depth + 1));
        }
        merge(&mut out, own_properties(root, obj, depth));
        return out;
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ => return Value::Null,
    };
    match ty {
        "object" => own_properties(root, obj, depth),
        "array" => match obj.get("items") {
            Some(items) => Value::Array(vec![value(root, items, field, depth + 1)]),
            None => json!([]),
        },
        "string" => Value::String(string(obj, field)),
        "integer" => json!(obj.get("minimum").and_then(Value::as_i64).unwrap_or(0).max(1)),
        "number" => json!(obj.get("minimum").and_then(Value::as_f64).unwrap_or(1.0)),
        "boolean" => json!(true),
        _ => Value::Null,
    }
}

fn own_properties(root: &Value, obj: &Map<String, Value>, depth: u32) -> Value {
    let mut out = Map::new();
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, s) in props {
            out.insert(name.clone(), value(root, s, Some(name), depth + 1));
        }
    }
    Value::Object(out)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => a.extend(b),
        (into @ Value::Null, from) => *into = from,
        _ => {}
    }
}

/// A string that looks like what the field holds; its format first.
fn string(obj: &Map<String, Value>, field: Option<&str>) -> String {
    match obj.get("format").and_then(Value::as_str) {
        Some("date") => return "2024-03-15".into(),
        Some("date-time") => return "2024-03-15T09:30:00+08:00".into(),
        Some("uuid") => return "0190a6f2-7b1c-7d3e-8f40-123456789abc".into(),
        _ => {}
    }
    let field = field.unwrap_or("");
    let text = if field.contains("id_number") || field == "psn_no" || field == "certno" {
        ID_NUMBER
    } else if field.contains("credit_code") {
        CREDIT_CODE
    } else if field.contains("phone") || field == "tel" {
        PHONE
    } else if field.contains("month") {
        "2024-03"
    } else if field == "region" || field.ends_with("_region") {
        "420100"
    } else if field.contains("amount")
        || field.contains("base")
        || field.contains("fee")
        || field.contains("amt")
        || field.contains("balance")
        || field.contains("total")
        || field.ends_with("_due")
        || field.ends_with("_paid")
    {
        "123.45"
    } else if field.contains("rate") {
        "0.08"
    } else if field.contains("date") || field.ends_with("_on") || field.ends_with("_from") {
        "2024-03-15"
    } else if field.ends_with("_at") || field.contains("time") {
        "2024-03-15T09:30:00+08:00"
    } else if field == "line" {
        "medical"
    } else if field == "channel" {
        "counter"
    } else if field.contains("insurance_type") {
        "employee_medical"
    } else if field == "category" {
        "employee"
    } else if field == "year" {
        "2024"
    } else {
        "x1"
    };
    text.into()
}
