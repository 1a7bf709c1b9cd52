// The registries (server/registries.h) alone: a store in a fresh folder, wrapped so that a
// test can refuse its writes, and a CoreLoop; no droverd, no gRPC. What they answer over
// the API is tested in image_registry_test.cc and datastore_registry_test.cc.
#include "server/registries.h"

#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core_loop.h"
#include "storage/sqlite_store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fault_injecting_store.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Property;

const absl::Status kDiskError = absl::UnavailableError("disk I/O error (injected)");
const std::string kDigest = "sha256:" + std::string(64, 'a');

class RegistriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<storage::SqliteStore>> base =
        storage::SqliteStore::Open({.path = dir_.path() + "/drover.db"});
    ASSERT_TRUE(base.ok()) << base.status();
    store_ = std::make_unique<testing::FaultInjectingStore>(*std::move(base));
    images_ = std::make_unique<ImageRegistry>(*store_, loop_, clock_);
    datastores_ = std::make_unique<DatastoreRegistry>(
        *store_, loop_, clock_, DatastoreRoots{.allowed = {dir_.path()}});
  }
  void TearDown() override {
    loop_.Stop();
    store_->Close();
  }

  // Runs `change` on the loop and waits for what its callback is told.
  template <typename Result, typename Change>
  Result OnLoop(Change change) {
    absl::Notification done;
    Result result = absl::UnknownError("not called");
    loop_.Post([&] {
      change([&](Result r) {
        result = std::move(r);
        done.Notify();
      });
    });
    done.WaitForNotification();
    return result;
  }
  absl::StatusOr<v1::Image> PutImage(const std::string& name) {
    v1::Image image;
    image.set_name(name);
    image.set_digest(kDigest);
    return OnLoop<absl::StatusOr<v1::Image>>(
        [&](auto done) { images_->Put(image, std::move(done)); });
  }
  absl::StatusOr<v1::Datastore> PutDatastore(const std::string& name, bool replace = false) {
    v1::Datastore datastore;
    datastore.set_name(name);
    datastore.set_type(v1::Datastore::HOSTPATH);
    datastore.set_path(dir_.path());
    return OnLoop<absl::StatusOr<v1::Datastore>>(
        [&](auto done) { datastores_->Put(datastore, replace, std::move(done)); });
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  CoreLoop loop_;
  std::unique_ptr<testing::FaultInjectingStore> store_;
  std::unique_ptr<ImageRegistry> images_;
  std::unique_ptr<DatastoreRegistry> datastores_;
};

TEST_F(RegistriesTest, AStoredImageIsListedAndItsDigestGoesToJobsOfThatImage) {
  absl::StatusOr<v1::Image> stored = PutImage("trainer");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_TRUE(stored->has_create_time());
  EXPECT_TRUE(images_->Exists("trainer"));
  EXPECT_THAT(images_->List(), ElementsAre(Property(&v1::Image::name, "trainer")));
  v1::JobSpec spec;
  spec.mutable_environment()->set_image("trainer");
  EXPECT_EQ(images_->DigestOf(spec), kDigest);
  spec.mutable_environment()->set_image("host");
  EXPECT_EQ(images_->DigestOf(spec), "");
}

TEST_F(RegistriesTest, AnImageTheStoreRefusesIsNotRegistered) {
  store_->FailNext("PutImage", kDiskError);
  EXPECT_EQ(PutImage("trainer").status(), kDiskError);
  EXPECT_FALSE(images_->Exists("trainer"));
  EXPECT_TRUE(images_->List().empty());
}

TEST_F(RegistriesTest, AnImageDeleteTheStoreRefusesKeepsTheImage) {
  ASSERT_TRUE(PutImage("trainer").ok());
  store_->FailNext("DeleteImage", kDiskError);
  EXPECT_EQ(OnLoop<absl::Status>([&](auto done) { images_->Delete("trainer", std::move(done)); }),
            kDiskError);
  EXPECT_TRUE(images_->Exists("trainer"));
  EXPECT_TRUE(OnLoop<absl::Status>([&](auto done) { images_->Delete("trainer", std::move(done)); })
                  .ok());
  EXPECT_FALSE(images_->Exists("trainer"));
  EXPECT_TRUE(absl::IsNotFound(
      OnLoop<absl::Status>([&](auto done) { images_->Delete("trainer", std::move(done)); })));
}

TEST_F(RegistriesTest, AListReadBeforeAChangeStaysAsItWasRead) {
  ASSERT_TRUE(PutImage("a").ok());
  std::vector<v1::Image> before = images_->List();
  ASSERT_TRUE(PutImage("b").ok());
  EXPECT_THAT(before, ElementsAre(Property(&v1::Image::name, "a")));
  EXPECT_EQ(images_->List().size(), 2u);
}

TEST_F(RegistriesTest, ADatastoreIsListedMaskedAndCarriedWithItsCredentials) {
  v1::Datastore datastore;
  datastore.set_name("s3");
  datastore.set_type(v1::Datastore::RCLONE);
  datastore.set_path("bucket/data");
  (*datastore.mutable_rclone_options())["type"] = "s3";
  (*datastore.mutable_rclone_options())["secret_access_key"] = "hunter2";
  absl::StatusOr<v1::Datastore> stored = OnLoop<absl::StatusOr<v1::Datastore>>(
      [&](auto done) { datastores_->Put(datastore, false, std::move(done)); });
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_NE(stored->rclone_options().at("secret_access_key"), "hunter2");
  ASSERT_EQ(datastores_->List().size(), 1u);
  EXPECT_NE(datastores_->List()[0].rclone_options().at("secret_access_key"), "hunter2");
  v1::JobSpec spec;
  spec.add_arguments()->mutable_data()->set_datastore("s3");
  spec.add_outputs()->set_datastore("gone");
  std::map<std::string, v1::Datastore> referenced = datastores_->ReferencedBy(spec);
  ASSERT_EQ(referenced.size(), 1u);
  EXPECT_EQ(referenced.at("s3").rclone_options().at("secret_access_key"), "hunter2");
}

TEST_F(RegistriesTest, ATakenDatastoreNameNeedsReplace) {
  ASSERT_TRUE(PutDatastore("scratch").ok());
  absl::StatusOr<v1::Datastore> again = PutDatastore("scratch");
  EXPECT_TRUE(absl::IsAlreadyExists(again.status())) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("--replace"));
  EXPECT_TRUE(PutDatastore("scratch", /*replace=*/true).ok());
}

TEST_F(RegistriesTest, ADatastoreTheStoreRefusesIsNotRegistered) {
  store_->FailNext("PutDatastore", kDiskError);
  EXPECT_EQ(PutDatastore("scratch").status(), kDiskError);
  EXPECT_TRUE(datastores_->List().empty());
  v1::JobSpec spec;
  spec.add_arguments()->mutable_data()->set_datastore("scratch");
  absl::Status check = datastores_->CheckReferences(spec);
  EXPECT_TRUE(absl::IsInvalidArgument(check)) << check;
  EXPECT_THAT(check.message(), HasSubstr("spec.arguments[0].data.datastore: 'scratch'"));
}

TEST_F(RegistriesTest, OutputsNeedADatastoreThatAllowsWrites) {
  ASSERT_TRUE(PutDatastore("scratch").ok());
  v1::JobSpec spec;
  spec.add_outputs()->set_datastore("scratch");
  absl::Status check = datastores_->CheckReferences(spec);
  EXPECT_TRUE(absl::IsFailedPrecondition(check)) << check;
  EXPECT_THAT(check.message(), HasSubstr("read-only"));
}

TEST_F(RegistriesTest, InputsAreCheckedAsArgumentsAreAndNamedAsInputs) {
  ASSERT_TRUE(PutDatastore("scratch").ok());
  v1::JobSpec spec;
  v1::DataInput* input = spec.add_inputs();
  input->set_name("data");
  input->mutable_data()->set_datastore("scratch");
  EXPECT_TRUE(datastores_->CheckReferences(spec).ok());
  EXPECT_EQ(datastores_->ReferencedBy(spec).count("scratch"), 1u);
  input->mutable_data()->set_mode(v1::DataReference::UPLOAD);
  absl::Status check = datastores_->CheckReferences(spec);
  EXPECT_TRUE(absl::IsFailedPrecondition(check)) << check;
  EXPECT_THAT(check.message(), HasSubstr("spec.inputs[0].data: datastore 'scratch' is read-only"));
  input->mutable_data()->set_datastore("nowhere");
  check = datastores_->CheckReferences(spec);
  EXPECT_TRUE(absl::IsInvalidArgument(check)) << check;
  EXPECT_THAT(check.message(), HasSubstr("spec.inputs[0].data.datastore: 'nowhere'"));
}

TEST(TargetNamesTest, KnowsTheTargetsItWasLastGiven) {
  TargetNames names;
  EXPECT_FALSE(names.Exists("default"));
  v1::ComputeTarget gpu;
  gpu.set_name("gpu");
  names.Set({gpu});
  EXPECT_TRUE(names.Exists("gpu"));
  names.Set({});
  EXPECT_FALSE(names.Exists("gpu"));
}

}  // namespace
}  // namespace drover::server
