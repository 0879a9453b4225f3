// Logbook's GraphiQL page: the console's example operations as tabs, GraphQL over HTTP at
// /graphql and subscriptions over WebSocket at the same path (graphql-transport-ws; the headers
// editor's JSON is the connection_init payload, so the same key authenticates both).
(function () {
  'use strict';
  var tabs = JSON.parse(document.getElementById('logbook-tabs').textContent);
  var url = new URL('/graphql', window.location.origin);
  var socket = new URL('/graphql', window.location.origin);
  socket.protocol = socket.protocol === 'https:' ? 'wss:' : 'ws:';

  // `/graphiql#key=lbk_…` (what `serve --demo` prints) fills the headers editor. A fragment never
  // reaches a server; it is also taken out of the address bar so the key stays off the history.
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var key = fragment.get('key');
  var headers;
  if (key) {
    headers = JSON.stringify({ Authorization: 'Bearer ' + key }, null, 2);
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
  }

  var fetcher = GraphiQL.createFetcher({ url: url.toString(), subscriptionUrl: socket.toString() });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultTabs: tabs,
      headers: headers,
      defaultHeaders: '{"Authorization": "Bearer <your API key>"}',
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: true,
    }),
  );
})();
