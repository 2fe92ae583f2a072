"""The API's routes, one module per resource, each with its `router` (hq_server.app includes
them in a fixed order: a fixed path such as /jobs/next comes before /jobs/{job_id})."""
