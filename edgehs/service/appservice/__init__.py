"""Application services: registrations, the transaction pusher, queries.

https://spec.matrix.org/v1.19/application-service-api/
"""
