//! Structured mutations of a JSON value: pick a node (by index in depth-first order) and
//! replace, remove or reshape it. Applied to the valid-looking examples, they reach past the
//! "is it JSON / is it an object" checks into each field's decoding.

use arbitrary::Arbitrary;
use serde_json::{Map, Number, Value, json};

/// One change at node `at` (modulo the number of nodes).
#[derive(Arbitrary, Debug, Clone)]
pub struct Mutation {
    pub at: u16,
    pub op: Op,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Removed from its object or array (the root becomes `null`).
    Remove,
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// One of [`INTERESTING`] (strings) or [`interesting_number`].
    Interesting(u8),
    InterestingNumber(u8),
    /// `""`, `[]` or `{}` of the node's kind.
    Empty,
    /// `[node]`.
    Wrap,
    /// A second copy of an array item, or an unknown field in an object.
    Grow,
    /// The node as a JSON string (`12` → `"12"`, `"a"` → `"\"a\""`).
    Stringify,
}

/// Strings that parsers get wrong: empty, blank, signs, exponents, overflow, impossible
/// dates and months, full-width digits, control and multi-byte characters, near-misses of
/// the identifiers.
pub const INTERESTING: &[&str] = &[
    "",
    " ",
    "-",
    ".",
    "-0",
    "-0.00",
    "0",
    "+1",
    "1e3",
    "1e400",
    "0.001",
    "1.",
    ".5",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "99999999999999999999999999999999",
    "0.0000000000000000000000000000001",
    "2024-00",
    "2024-13",
    "0000-01",
    "9999-12",
    "2024-02-30",
    "2024-03-15T25:00:00Z",
    "+262143-12-31T23:59:59Z",
    "１２３",
    "\u{0}",
    "\u{feff}13812345678",
    "+8613812345678",
    "+86",
    "11010519491231002x",
    "110105194912310021",
    "11010520991231002X",
    "1101051949123100２X",
    "91350100m000100y43",
    "91350100M000100Y4",
    "91350100M000100Y433",
    "张三",
    "medical",
    "social",
    "common",
    "null",
];

/// Numbers at the edges: 0, ±1, the integer limits, a huge and a tiny float, a fraction.
pub fn interesting_number(i: u8) -> Value {
    match i % 10 {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MIN),
        3 => json!(i64::MAX),
        4 => json!(u64::MAX),
        5 => json!(1e308),
        6 => json!(5e-324),
        7 => json!(0.5),
        8 => json!(-0.0),
        _ => json!(4294967296_u64),
    }
}

/// The JSON pointers of every node, depth first, the root (`""`) first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, child) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            out.push(at.clone());
            for (i, child) in a.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// Past this size (as JSON text) no further mutation is applied: `Stringify` doubles what it
/// escapes and `Wrap` with `Grow` doubles a value, so without a bound a few dozen mutations
/// made inputs of gigabytes (the first `make fuzz` of `envelope` timed out on one).
pub const MAX_LEN: usize = 64 * 1024;

/// Applies `mutations` in order, while the value is under [`MAX_LEN`].
pub fn apply(value: &mut Value, mutations: &[Mutation]) {
    for m in mutations {
        if serde_json::to_vec(value).map_or(true, |v| v.len() > MAX_LEN) {
            return;
        }
        apply_one(value, m);
    }
}

fn apply_one(value: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let at = all[usize::from(m.at) % all.len()].clone();
    if let Op::Remove = m.op {
        match at.rsplit_once('/') {
            None => *value = Value::Null,
            Some((parent, key)) => match value.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < items.len()
                    {
                        items.remove(i);
                    }
                }
                _ => {}
            },
        }
        return;
    }
    let Some(node) = value.pointer_mut(&at) else {
        return;
    };
    *node = match &m.op {
        Op::Remove => unreachable!("handled above"),
        Op::Null => Value::Null,
        Op::Bool(b) => json!(b),
        Op::Int(i) => json!(i),
        Op::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Op::Text(t) => json!(t),
        Op::Interesting(i) => json!(INTERESTING[usize::from(*i) % INTERESTING.len()]),
        Op::InterestingNumber(i) => interesting_number(*i),
        Op::Empty => match &*node {
            Value::Array(_) => json!([]),
            Value::Object(_) => Value::Object(Map::new()),
            _ => json!(""),
        },
        Op::Wrap => json!([node.take()]),
        Op::Grow => match node.take() {
            Value::Array(mut items) => {
                if let Some(first) = items.first().cloned() {
                    items.push(first);
                }
                Value::Array(items)
            }
            Value::Object(mut map) => {
                map.insert("unknown_field".into(), json!(1));
                Value::Object(map)
            }
            other => other,
        },
        Op::Stringify => json!(node.to_string()),
    };
}
