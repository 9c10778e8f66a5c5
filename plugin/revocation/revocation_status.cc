// placeholder: replaced by the revocation service (issue 4)
