//! The operator's `[people]`: who holds which roles, and which platform identity is whom.

use std::collections::HashMap;

use airlock_channels::Person;

pub struct People {
    by_name: HashMap<String, Person>,
    /// (channel, platform id) → person name.
    by_identity: HashMap<(String, String), String>,
}

impl People {
    pub fn new(people: Vec<Person>) -> People {
        let mut by_identity = HashMap::new();
        for p in &people {
            for (channel, id) in &p.ids {
                by_identity.insert((channel.clone(), id.clone()), p.name.clone());
            }
        }
        People {
            by_name: people.into_iter().map(|p| (p.name.clone(), p)).collect(),
            by_identity,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Person> {
        self.by_name.get(name)
    }

    /// The person a platform identity belongs to. Only the operator's config says so.
    pub fn by_identity(&self, channel: &str, id: &str) -> Option<String> {
        self.by_identity.get(&(channel.to_string(), id.to_string())).cloned()
    }

    /// People holding at least one of `roles`, by name.
    pub fn holding<'a>(&'a self, roles: &'a [String]) -> impl Iterator<Item = &'a Person> + 'a {
        let mut v: Vec<&Person> = self
            .by_name
            .values()
            .filter(|p| p.roles.iter().any(|r| roles.contains(r)))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }
}
