//! Every vector of `golden/cids.json`.

use atdata::entry_cid;

use crate::golden::load;

#[test]
fn every_entry_cid_matches_python() {
    let vectors = load("cids.json")["vectors"].as_array().unwrap().clone();
    assert_eq!(vectors.len(), 6);
    for v in &vectors {
        let schema_ref = v["schema_ref"].as_str().unwrap();
        let urls: Vec<String> = v["data_urls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_owned())
            .collect();
        let cid = entry_cid(schema_ref, &urls).unwrap();
        assert_eq!(
            cid.to_string(),
            v["cid"].as_str().unwrap(),
            "{schema_ref} {urls:?}"
        );
        assert_eq!(
            hex::encode(cid.hash().digest()),
            v["sha256_of_dag_cbor"].as_str().unwrap()
        );
    }
}

#[test]
fn cids_depend_on_urls_and_schema_only() {
    let urls = vec!["a.tar".to_string()];
    let a = entry_cid("atdata://local/schema/A@1.0.0", &urls).unwrap();
    assert_eq!(
        a,
        entry_cid("atdata://local/schema/A@1.0.0", &urls).unwrap()
    );
    assert_ne!(
        a,
        entry_cid("atdata://local/schema/A@1.0.1", &urls).unwrap()
    );
    assert_ne!(
        a,
        entry_cid("atdata://local/schema/A@1.0.0", &["b.tar".to_string()]).unwrap()
    );
}
