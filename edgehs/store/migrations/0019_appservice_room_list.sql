-- 0019: the application services' published room directories, one per (service, network):
-- PUT /directory/list/appservice/{networkId}/{roomId} adds or removes a row, and /publicRooms
-- lists them with third_party_instance_id ("{appservice_id}|{network_id}") or
-- include_all_networks. Separate from rooms.is_public, the homeserver's own directory.
-- https://spec.matrix.org/v1.19/client-server-api/#put_matrixclientv3directorylistappservicenetworkidroomid
CREATE TABLE appservice_room_list (
    appservice_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    PRIMARY KEY (appservice_id, network_id, room_id)
);
