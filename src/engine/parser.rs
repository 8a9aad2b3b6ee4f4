//! The rules parser for the catalog as it is now, rebuilt only when the
//! catalog changed (its service names are the parser's vocabulary).

use std::sync::{Arc, Mutex};

use crate::catalog::{Catalog, SharedCatalog};
use crate::nlu::RulesParser;

pub(super) struct ParserCache {
    catalog: SharedCatalog,
    built: Mutex<(Arc<Catalog>, Arc<RulesParser>)>,
}

impl ParserCache {
    pub(super) fn new(catalog: SharedCatalog) -> Self {
        let current = catalog.current();
        let parser = Arc::new(RulesParser::new(&current));
        ParserCache {
            catalog,
            built: Mutex::new((current, parser)),
        }
    }

    /// The current catalog and its parser.
    pub(super) fn current(&self) -> (Arc<Catalog>, Arc<RulesParser>) {
        let current = self.catalog.current();
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&built.0, &current) {
            *built = (current.clone(), Arc::new(RulesParser::new(&current)));
        }
        (current, built.1.clone())
    }
}
