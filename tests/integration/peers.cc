// placeholder: revocation peers for integration tests (issue 4)
