//! The SMS templates (`templates/templates.yaml`, data with a version each) and their
//! rendering. A placeholder the caller does not fill is an error, not an empty gap: a message
//! that would read "您应缴元" is never sent.

use serde::Deserialize;
use std::collections::BTreeMap;

const BUILT_IN: &str = include_str!("../templates/templates.yaml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Template {
    pub id: String,
    pub version: i32,
    pub category: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
struct File {
    templates: Vec<Template>,
}

#[derive(Debug, Clone)]
pub struct Templates {
    by_id: BTreeMap<String, Template>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub template: String,
    pub version: i32,
    pub category: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("no template '{0}'")]
    Unknown(String),
    #[error("template '{0}' needs '{{{1}}}', which was not given")]
    Missing(String, String),
    #[error("templates: {0}")]
    Invalid(String),
}

impl Templates {
    /// The templates shipped with the service.
    pub fn built_in() -> Self {
        Self::parse(BUILT_IN).expect("the built-in templates are valid")
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let file: File = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| TemplateError::Invalid(e.to_string()))?;
        let mut by_id = BTreeMap::new();
        for t in file.templates {
            if !contracts::notification::CATEGORIES.contains(&t.category.as_str()) {
                return Err(TemplateError::Invalid(format!(
                    "template '{}' has category '{}'; use one of {:?}",
                    t.id,
                    t.category,
                    contracts::notification::CATEGORIES
                )));
            }
            if placeholders(&t.text).is_none() {
                return Err(TemplateError::Invalid(format!(
                    "template '{}' has an unclosed '{{'",
                    t.id
                )));
            }
            if by_id.insert(t.id.clone(), t.clone()).is_some() {
                return Err(TemplateError::Invalid(format!(
                    "template '{}' appears twice",
                    t.id
                )));
            }
        }
        Ok(Templates { by_id })
    }

    pub fn get(&self, id: &str) -> Option<&Template> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    pub fn render(&self, id: &str, vars: &BTreeMap<&str, String>) -> Result<Rendered, TemplateError> {
        let t = self
            .get(id)
            .ok_or_else(|| TemplateError::Unknown(id.to_owned()))?;
        let mut out = String::with_capacity(t.text.len() + 64);
        let mut rest = t.text.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').expect("checked at parse");
            let name = &after[..close];
            let value = vars
                .get(name)
                .ok_or_else(|| TemplateError::Missing(id.to_owned(), name.to_owned()))?;
            out.push_str(value);
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(Rendered {
            template: t.id.clone(),
            version: t.version,
            category: t.category.clone(),
            text: out,
        })
    }
}

/// The placeholders of a text, or `None` when a brace is not closed.
pub fn placeholders(text: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_has_the_line_signature_and_a_known_category() {
        let t = Templates::built_in();
        assert!(t.ids().count() >= 15);
        for id in t.ids() {
            let tpl = t.get(id).expect("listed");
            let names = placeholders(&tpl.text).expect("closed");
            assert!(names.contains(&"signature"), "{id} has no signature");
            if tpl.category != "reminder" {
                assert!(names.contains(&"hotline"), "{id} names no hotline");
            }
        }
    }

    #[test]
    fn a_missing_placeholder_is_an_error_and_a_full_one_renders() {
        let t = Templates::built_in();
        let mut vars = BTreeMap::new();
        vars.insert("signature", "武汉医保".to_owned());
        vars.insert("hotline", "027-87812393".to_owned());
        vars.insert("month", "2024-03".to_owned());
        vars.insert("amount", "133.33".to_owned());
        assert_eq!(
            t.render("contribution-assessed", &vars),
            Err(TemplateError::Missing(
                "contribution-assessed".into(),
                "deadline".into()
            ))
        );
        vars.insert("deadline", "2024-03-24".to_owned());
        let r = t.render("contribution-assessed", &vars).expect("renders");
        assert_eq!(
            r.text,
            "【武汉医保】您2024-03应缴社会保险费133.33元，请于2024-03-24前缴纳。如有疑问请致电027-87812393。"
        );
        assert_eq!((r.version, r.category.as_str()), (1, "service"));
    }

    #[test]
    fn bad_template_files_are_refused_with_the_reason() {
        let bad_category = "templates:\n  - {id: a, version: 1, category: marketing, text: \"x\"}\n";
        assert!(
            matches!(Templates::parse(bad_category), Err(TemplateError::Invalid(m)) if m.contains("marketing"))
        );
        let unclosed = "templates:\n  - {id: a, version: 1, category: service, text: \"x {name\"}\n";
        assert!(
            matches!(Templates::parse(unclosed), Err(TemplateError::Invalid(m)) if m.contains("unclosed"))
        );
    }
}
