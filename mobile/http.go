package mobile

import "github.com/fieldsync/fieldsync/client"

// HTTPTransport is the Transport over HTTP: the API's one Go client
// (package client), with the phone's device token in Token, its
// http.Client (timeouts) in Client, and GzipRequests for push bodies.
// Errors from the server are *syncproto.Error with the server's code, or a
// code from the HTTP status when the answer has no error body (a proxy's
// 502); photo chunks resume at BlobStatus.Received.
type HTTPTransport = client.Client

var _ Transport = (*HTTPTransport)(nil)
