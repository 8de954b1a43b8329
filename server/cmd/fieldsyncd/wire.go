package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

// services are the server's services, wired to their stores.
type services struct {
	devices     *server.Devices
	sync        *server.Syncer
	media       *media.Service
	blobs       *media.Breaker // around MinIO
	forms       *server.Forms
	maintenance *server.Maintenance
	reports     *reports.Service
	accounts    *server.Accounts
	desk        *server.Desk
	audit       *server.Audit
}

// wire builds the services on the open database and the MinIO store (which
// may be down), and creates the indexes they need (idempotent, so every
// start does it).
func wire(ctx context.Context, cfg Config, db *servermongo.DB, store *serverminio.Store, logger *slog.Logger) (*services, error) {
	devStore := servermongo.NewDeviceStore(db.Database())
	syncStore := servermongo.NewSyncStore(db.Database())
	mediaStore := servermongo.NewMediaStore(db.Database())
	consoleStore := servermongo.NewConsoleStore(db.Database())
	for name, ensure := range map[string]func(context.Context) error{
		"devices": devStore.EnsureIndexes, "sync": syncStore.EnsureIndexes, "media": mediaStore.EnsureIndexes,
		"console": consoleStore.EnsureIndexes,
	} {
		if err := ensure(ctx); err != nil {
			return nil, fmt.Errorf("indexes of %s: %w", name, err)
		}
	}
	devices := server.NewDevices(devStore)
	access := &server.Access{Assigned: devices.Assigned, ZoneSchools: consoleStore.ZoneSchools}

	blobs, err := serverminio.NewBlobs(cfg.Minio, serverminio.BlobOptions{PublicEndpoint: cfg.MinioPublic, PublicSecure: cfg.MinioPublicSecure})
	if err != nil {
		return nil, err
	}
	// A breaker around MinIO: while it is down, photo calls fail at once
	// (503) and one call every few seconds checks whether it is back,
	// creating the bucket if the server is new.
	breaker := media.NewBreaker(blobs, media.BreakerConfig{Probe: store.EnsureBucket}, logger)
	med := media.New(breaker, mediaStore, access, media.Config{ThumbMaxDecodeBytes: cfg.ThumbDecodeBudget,
		DeviceQuota: cfg.UploadQuota, UnreferencedTTL: cfg.UnreferencedPhotoTTL}, logger)

	// Each process writes conflict resolutions as its own replica: two
	// processes sharing one replica id could make two different versions
	// with equal vectors.
	syncer := server.NewSyncer(syncStore, syncproto.ReplicaID(uuid.Must(uuid.NewV7())))
	syncer.Access = access
	syncer.Logger = logger.With("component", "sync")
	syncer.Limits = cfg.Limits()
	syncer.Limits.ChunkBytes, syncer.Limits.MaxBlobSize = med.Limits()
	validator := server.NewFormValidator(syncer, devices.Today)
	validator.Logger = logger.With("component", "forms")
	syncer.Validator = validator
	// The office console: its read model and the audit log follow every
	// accepted change (server.Desk.Stored).
	audit := &server.Audit{Store: consoleStore, Now: syncer.Now, Deferred: true}
	desk := &server.Desk{Sync: syncer, Access: access, Read: consoleStore, Audit: audit, Now: syncer.Now, Log: syncStore}
	syncer.Stored = server.StoredHooks(med.ExpectRecords, desk.Stored)
	accounts := server.NewAccounts(consoleStore)
	maint := cfg.Maintenance(syncStore)
	maint.Logger = logger.With("component", "maintenance")
	rep := reports.NewService(syncStore, devStore, access, syncer, syncer.Replica)
	rep.Photos = func(p server.Principal) reports.PhotoSource { return reports.MediaThumbs(med, nil, p) }
	return &services{devices: devices, sync: syncer, media: med, blobs: breaker, forms: server.NewForms(syncer, validator, syncer.Replica), maintenance: maint,
		reports: rep, accounts: accounts, desk: desk, audit: audit}, nil
}
