"""linkhop's common library: settings, logging, pools, the click-event schema, errors,
the compiled link record, API-key auth and the migrations runner."""
