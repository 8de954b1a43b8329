// Run once by the mongo-init service of deploy/compose.yaml (mongosh, as
// the root user): makes the three mongo services a replica set and creates
// fieldsync's own user. Idempotent: a second run changes nothing.
const members = ["mongo1:27017", "mongo2:27017", "mongo3:27017"];
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: "rs0", members: members.map((host, i) => ({ _id: i, host })) });
}
// Wait for a primary before writing.
for (let i = 0; i < 120 && !db.hello().isWritablePrimary; i++) {
  sleep(1000);
}
const app = db.getSiblingDB("fieldsync");
if (!app.getUser("fieldsync")) {
  app.createUser({
    user: "fieldsync",
    pwd: process.env.FIELDSYNC_MONGO_PASSWORD,
    roles: [{ role: "readWrite", db: "fieldsync" }],
  });
}
print("replica set rs0 ready, user fieldsync present");
