// Tests of the local runtime's inventory: parsing testdata/inventory.yaml and small inline files,
// resolving targets to pods, --to/--from matching, label selectors, and the exact error messages
// a user sees. Expected pods are worked out by hand from the comment at the top of the sample.
#include "controlplane/inventory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/label_selector.h"

namespace tapkit {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::string kSample =
    std::string(TAPKIT_SOURCE_DIR) + "/controlplane/testdata/inventory.yaml";

class SampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Inventory> inv = Inventory::Load(kSample);
    ASSERT_TRUE(inv.ok()) << inv.status();
    inv_.emplace(*std::move(inv));
  }

  // The names of the pods `target` resolves to, or the error's code and message.
  std::vector<std::string> Resolve(const std::string& target, const std::string& ns,
                                   const std::string& selector = "") const {
    absl::StatusOr<std::vector<PodInfo>> pods = inv_->Resolve(target, ns, selector);
    if (!pods.ok()) return {pods.status().ToString()};
    std::vector<std::string> names;
    for (const PodInfo& p : *pods) names.push_back(p.name);
    return names;
  }
  absl::Status ResolveError(const std::string& target, const std::string& ns,
                            const std::string& selector = "") const {
    return inv_->Resolve(target, ns, selector).status();
  }
  const PodInfo& Pod(const std::string& ip) const {
    const PodInfo* pod = inv_->PodByIp(ip);
    EXPECT_NE(pod, nullptr) << ip;
    return *pod;
  }

  std::optional<Inventory> inv_;
};

const std::vector<std::string> kDemoPods = {"backend-5d4f8b7c9-x7k2m",
                                            "backend-canary",
                                            "backend-static",
                                            "cache-0",
                                            "cache-1",
                                            "frontend-1",
                                            "log-agent-q8w2v",
                                            "report-28764120-7bq9z"};

// Every pod of the sample, with its address, interface and workload as the comment at the top
// of testdata/inventory.yaml works them out.
TEST_F(SampleTest, LoadsEveryPodWithItsWorkload) {
  EXPECT_THAT(inv_->Namespaces(), ElementsAre("default", "demo"));
  struct Want {
    const char *ns, *name, *ip, *interface, *kind, *workload;
  };
  const Want want[] = {
      {"default", "curl", "127.0.0.2", "lo", "", ""},
      {"demo", "backend-5d4f8b7c9-x7k2m", "127.0.10.2", "lo", "deployment", "backend"},
      {"demo", "backend-canary", "127.0.10.4", "lo", "", ""},
      {"demo", "backend-static", "127.0.10.3", "lo", "deployment", "backend"},
      {"demo", "cache-0", "127.0.10.5", "lo", "statefulset", "cache"},
      {"demo", "cache-1", "fd00::11", "veth-cache1", "statefulset", "cache"},
      {"demo", "frontend-1", "127.0.10.1", "lo", "deployment", "frontend"},
      {"demo", "log-agent-q8w2v", "127.0.10.7", "eth0", "daemonset", "log-agent"},
      {"demo", "report-28764120-7bq9z", "127.0.10.8", "lo", "cronjob", "report"},
  };
  const std::vector<PodInfo>& pods = inv_->Pods();
  ASSERT_EQ(pods.size(), std::size(want));
  for (size_t i = 0; i < pods.size(); ++i) {
    SCOPED_TRACE(pods[i].name);
    EXPECT_EQ(pods[i].namespace_, want[i].ns);
    EXPECT_EQ(pods[i].name, want[i].name);
    EXPECT_EQ(pods[i].ip, want[i].ip);
    EXPECT_EQ(pods[i].interface, want[i].interface);
    EXPECT_EQ(pods[i].workload_kind, want[i].kind);
    EXPECT_EQ(pods[i].workload_name, want[i].workload);
  }
  EXPECT_EQ(pods[1].labels,
            (LabelSet{{"app", "backend"}, {"pod-template-hash", "5d4f8b7c9"}, {"tier", "api"}}));
}

TEST_F(SampleTest, NamesAndServices) {
  EXPECT_THAT(inv_->Names(ResourceType::kDeployment, "demo"), ElementsAre("backend", "frontend"));
  EXPECT_THAT(inv_->Names(ResourceType::kReplicaSet, "demo"), ElementsAre("backend-5d4f8b7c9"));
  EXPECT_THAT(inv_->Names(ResourceType::kCronJob, "demo"), ElementsAre("report"));
  EXPECT_THAT(inv_->Names(ResourceType::kPod, "default"), ElementsAre("curl"));
  EXPECT_THAT(inv_->Names(ResourceType::kDeployment, "default"), IsEmpty());
  EXPECT_THAT(inv_->Names(ResourceType::kNamespace, ""), ElementsAre("default", "demo"));
  const ServiceInfo* backend = inv_->FindService("demo", "backend");
  ASSERT_NE(backend, nullptr);
  EXPECT_EQ(backend->selector, (LabelSet{{"app", "backend"}}));
  EXPECT_THAT(backend->ports, ElementsAre(8080, 9090));
  EXPECT_EQ(inv_->FindService("default", "backend"), nullptr);
}

// Endpoint labels by address, worked out by hand from testdata/inventory.yaml: the pod, its
// workload chain's top, and the first service (by name) whose selector matches it.
TEST_F(SampleTest, LabelsForAnAddress) {
  Labels backend = inv_->LabelsFor("127.0.10.2");
  EXPECT_EQ(backend.ns, "demo");
  EXPECT_EQ(backend.pod, "backend-5d4f8b7c9-x7k2m");
  EXPECT_EQ(backend.workload_kind, "deployment");
  EXPECT_EQ(backend.workload_name, "backend");
  EXPECT_EQ(backend.service, "backend");
  // The canary is behind the service but in no workload.
  Labels canary = inv_->LabelsFor("127.0.10.4");
  EXPECT_EQ(canary.pod, "backend-canary");
  EXPECT_EQ(canary.workload_kind, "");
  EXPECT_EQ(canary.service, "backend");
  // Any text form of the address; a pod no service selects has no service label.
  Labels cache1 = inv_->LabelsFor("fd00::11");
  EXPECT_EQ(cache1.pod, "cache-1");
  EXPECT_EQ(cache1.workload_kind, "statefulset");
  EXPECT_EQ(cache1.service, "");
  EXPECT_TRUE(inv_->LabelsFor("127.0.99.99").empty());
}

// Each target type, by name and alone, gives exactly the pods worked out by hand.
TEST_F(SampleTest, EachTargetTypeResolvesToItsPods) {
  EXPECT_THAT(Resolve("pod/frontend-1", "demo"), ElementsAre("frontend-1"));
  EXPECT_THAT(Resolve("pod", "demo"), ::testing::ElementsAreArray(kDemoPods));
  EXPECT_THAT(Resolve("deployment/backend", "demo"),
              ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-static"));
  EXPECT_THAT(Resolve("deployment/frontend", "demo"), ElementsAre("frontend-1"));
  EXPECT_THAT(Resolve("deployment", "demo"),
              ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-static", "frontend-1"));
  EXPECT_THAT(Resolve("replicaset/backend-5d4f8b7c9", "demo"),
              ElementsAre("backend-5d4f8b7c9-x7k2m"));
  EXPECT_THAT(Resolve("statefulset/cache", "demo"), ElementsAre("cache-0", "cache-1"));
  EXPECT_THAT(Resolve("daemonset/log-agent", "demo"), ElementsAre("log-agent-q8w2v"));
  EXPECT_THAT(Resolve("job/report-28764120", "demo"), ElementsAre("report-28764120-7bq9z"));
  EXPECT_THAT(Resolve("cronjob/report", "demo"), ElementsAre("report-28764120-7bq9z"));
  EXPECT_THAT(Resolve("service/backend", "demo"),
              ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-canary", "backend-static"));
  EXPECT_THAT(Resolve("service", "demo"), ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-canary",
                                                      "backend-static", "frontend-1"));
  EXPECT_THAT(Resolve("pod", "default"), ElementsAre("curl"));
  // No namespace means "default".
  EXPECT_THAT(Resolve("pod/curl", ""), ElementsAre("curl"));
}

// ns/NAME ignores -n; `ns` alone is every pod, sorted by name across namespaces.
TEST_F(SampleTest, NamespaceTargetIgnoresTheNamespaceFlag) {
  EXPECT_THAT(Resolve("ns/default", "demo"), ElementsAre("curl"));
  EXPECT_THAT(Resolve("namespace/demo", "nowhere"), ::testing::ElementsAreArray(kDemoPods));
  EXPECT_THAT(
      Resolve("ns", "nowhere"),
      ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-canary", "backend-static", "cache-0",
                  "cache-1", "curl", "frontend-1", "log-agent-q8w2v", "report-28764120-7bq9z"));
}

// Singular, plural and short names, in any case, give the same pods.
TEST_F(SampleTest, TypeAliases) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> aliases = {
      {{"pod", "pods", "po", "Pod"}, "frontend-1"},
      {{"deployment", "deployments", "deploy", "Deployment"}, "frontend"},
      {{"statefulset", "statefulsets", "sts"}, "cache"},
      {{"daemonset", "daemonsets", "ds"}, "log-agent"},
      {{"replicaset", "replicasets", "rs"}, "backend-5d4f8b7c9"},
      {{"job", "jobs", "JOB"}, "report-28764120"},
      {{"cronjob", "cronjobs", "cj"}, "report"},
      {{"service", "services", "svc"}, "frontend"},
      {{"namespace", "namespaces", "ns"}, "default"},
  };
  for (const auto& [spellings, name] : aliases) {
    std::vector<std::string> want = Resolve(absl::StrCat(spellings[0], "/", name), "demo");
    ASSERT_FALSE(want.empty());
    ASSERT_EQ(want[0].find("NOT_FOUND"), std::string::npos) << want[0];
    for (const std::string& s : spellings) {
      EXPECT_EQ(Resolve(absl::StrCat(s, "/", name), "demo"), want) << s;
      EXPECT_EQ(Resolve(s, "demo"), Resolve(spellings[0], "demo")) << s;
    }
  }
}

// -l narrows the pods of any target, with every operator of kubectl's syntax.
TEST_F(SampleTest, LabelSelectorNarrows) {
  EXPECT_THAT(Resolve("svc/backend", "demo", "track!=canary"),
              ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-static"));
  EXPECT_THAT(Resolve("svc/backend", "demo", "track=canary"), ElementsAre("backend-canary"));
  EXPECT_THAT(Resolve("po", "demo", "app in (cache, frontend)"),
              ElementsAre("cache-0", "cache-1", "frontend-1"));
  EXPECT_THAT(Resolve("po", "demo", "!app"),
              ElementsAre("log-agent-q8w2v", "report-28764120-7bq9z"));
  EXPECT_THAT(Resolve("po", "demo", "tier"),
              ElementsAre("backend-5d4f8b7c9-x7k2m", "backend-canary", "backend-static"));
  EXPECT_THAT(Resolve("po", "demo", " app == backend , tier=api,track "),
              ElementsAre("backend-canary"));
  EXPECT_THAT(Resolve("po", "demo", "app notin (backend,cache)"),
              ElementsAre("frontend-1", "log-agent-q8w2v", "report-28764120-7bq9z"));
  EXPECT_THAT(Resolve("deploy/backend", "demo", "pod-template-hash=5d4f8b7c9"),
              ElementsAre("backend-5d4f8b7c9-x7k2m"));
  EXPECT_THAT(Resolve("ns", "", "run=curl"), ElementsAre("curl"));
}

TEST_F(SampleTest, PodByIp) {
  EXPECT_EQ(Pod("127.0.10.3").name, "backend-static");
  EXPECT_EQ(Pod("127.0.0.2").namespace_, "default");
  // Any text form of an address finds its pod.
  EXPECT_EQ(Pod("fd00::11").name, "cache-1");
  EXPECT_EQ(Pod("FD00:0000::0011").name, "cache-1");
  EXPECT_EQ(Pod("::ffff:127.0.10.1").name, "frontend-1");
  EXPECT_EQ(inv_->PodByIp("127.0.10.99"), nullptr);
  EXPECT_EQ(inv_->PodByIp("not an address"), nullptr);
  EXPECT_EQ(inv_->PodByIp(""), nullptr);
}

// --to/--from: deploy, svc, ns and pod resources, with the namespace the caller passes.
TEST_F(SampleTest, MatchesForToAndFrom) {
  const PodInfo& owned = Pod("127.0.10.2");  // backend-5d4f8b7c9-x7k2m
  EXPECT_TRUE(inv_->Matches("deploy/backend", "demo", owned));
  EXPECT_TRUE(inv_->Matches("deploy", "demo", owned));
  EXPECT_TRUE(inv_->Matches("rs/backend-5d4f8b7c9", "demo", owned));
  EXPECT_TRUE(inv_->Matches("svc/backend", "demo", owned));
  EXPECT_TRUE(inv_->Matches("svc", "demo", owned));
  EXPECT_TRUE(inv_->Matches("ns/demo", "default", owned));
  EXPECT_TRUE(inv_->Matches("ns", "", owned));
  EXPECT_TRUE(inv_->Matches("pod/backend-5d4f8b7c9-x7k2m", "demo", owned));
  EXPECT_TRUE(inv_->Matches("po", "demo", owned));
  EXPECT_FALSE(inv_->Matches("deploy/frontend", "demo", owned));
  EXPECT_FALSE(inv_->Matches("deploy/backend", "default", owned));  // another namespace
  EXPECT_FALSE(inv_->Matches("deploy/backend", "", owned));         // "" = default
  EXPECT_FALSE(inv_->Matches("svc/frontend", "demo", owned));
  EXPECT_FALSE(inv_->Matches("sts", "demo", owned));
  EXPECT_FALSE(inv_->Matches("ns/default", "demo", owned));
  EXPECT_FALSE(inv_->Matches("pod/backend-static", "demo", owned));
  EXPECT_FALSE(inv_->Matches("deplyment/backend", "demo", owned));  // malformed: nothing

  // The canary is behind the service but in no deployment.
  const PodInfo& canary = Pod("127.0.10.4");
  EXPECT_TRUE(inv_->Matches("svc/backend", "demo", canary));
  EXPECT_FALSE(inv_->Matches("deploy/backend", "demo", canary));
  EXPECT_FALSE(inv_->Matches("deploy", "demo", canary));

  const PodInfo& report = Pod("127.0.10.8");
  EXPECT_TRUE(inv_->Matches("cj/report", "demo", report));
  EXPECT_TRUE(inv_->Matches("job/report-28764120", "demo", report));
  EXPECT_FALSE(inv_->Matches("svc", "demo", report));

  EXPECT_TRUE(inv_->Matches("pod/curl", "", Pod("127.0.0.2")));

  // A pod the inventory does not know is judged by its own fields.
  PodInfo stranger;
  stranger.namespace_ = "demo";
  stranger.name = "backend-5d4f8b7c9-new01";
  stranger.labels = {{"app", "backend"}};
  stranger.workload_kind = "deployment";
  stranger.workload_name = "backend";
  EXPECT_TRUE(inv_->Matches("deploy/backend", "demo", stranger));
  EXPECT_TRUE(inv_->Matches("svc/backend", "demo", stranger));
  EXPECT_FALSE(inv_->Matches("rs/backend-5d4f8b7c9", "demo", stranger));
  EXPECT_FALSE(inv_->Matches("svc/frontend", "demo", stranger));
}

// NotFound errors list what exists, so the user can correct the command.
TEST_F(SampleTest, NotFoundMessagesListWhatExists) {
  EXPECT_EQ(ResolveError("deploy/backend", "shop"),
            absl::NotFoundError("namespace \"shop\" not found; namespaces: default, demo"));
  EXPECT_EQ(ResolveError("ns/shop", "demo"),
            absl::NotFoundError("namespace \"shop\" not found; namespaces: default, demo"));
  EXPECT_EQ(ResolveError("deploy/backnd", "demo"),
            absl::NotFoundError("deployment \"backnd\" not found in namespace \"demo\"; "
                                "deployments there: backend, frontend"));
  EXPECT_EQ(ResolveError("svc/backnd", "demo"),
            absl::NotFoundError("service \"backnd\" not found in namespace \"demo\"; "
                                "services there: backend, frontend"));
  EXPECT_EQ(ResolveError("po/nope", "demo"),
            absl::NotFoundError("pod \"nope\" not found in namespace \"demo\"; pods there: "
                                "backend-5d4f8b7c9-x7k2m, backend-canary, backend-static, "
                                "cache-0, cache-1, frontend-1, log-agent-q8w2v, "
                                "report-28764120-7bq9z"));
  EXPECT_EQ(ResolveError("deploy/backend", ""),
            absl::NotFoundError("deployment \"backend\" not found in namespace \"default\"; "
                                "namespace \"default\" has no deployments"));
  // Targets that exist but give no pods name the target and the selector.
  EXPECT_EQ(ResolveError("deploy/frontend", "demo", "tier=web"),
            absl::NotFoundError("target \"deploy/frontend\" in namespace \"demo\" has no pods "
                                "matching selector \"tier=web\""));
  EXPECT_EQ(ResolveError("ns/default", "", "run=x"),
            absl::NotFoundError("target \"ns/default\" has no pods matching selector \"run=x\""));
  EXPECT_EQ(ResolveError("deploy", "default"),
            absl::NotFoundError("target \"deploy\" in namespace \"default\" has no pods "
                                "(namespace \"default\" has no deployments)"));
  EXPECT_TRUE(absl::IsNotFound(ResolveError("cj", "demo", "job-name=other")));
}

TEST_F(SampleTest, InvalidTargetsAndSelectors) {
  EXPECT_EQ(ResolveError("deplyment/backend", "demo"),
            absl::InvalidArgumentError(
                "unknown resource type \"deplyment\" in target \"deplyment/backend\"; accepted "
                "types: pod (po), deployment (deploy), statefulset (sts), daemonset (ds), "
                "replicaset (rs), job, cronjob (cj), service (svc), namespace (ns), singular or "
                "plural"));
  EXPECT_EQ(ResolveError("deploy/", "demo"),
            absl::InvalidArgumentError("target \"deploy/\" has no name after \"/\""));
  EXPECT_EQ(ResolveError("deploy/a/b", "demo"),
            absl::InvalidArgumentError(
                "target \"deploy/a/b\" has more than one \"/\"; expected TYPE/NAME or TYPE"));
  EXPECT_EQ(
      ResolveError("", "demo"),
      absl::InvalidArgumentError("empty target; expected TYPE/NAME or TYPE, e.g. deploy/backend"));
  EXPECT_EQ(ResolveError("deploy/backend", "demo", "tier in web"),
            absl::InvalidArgumentError("label selector \"tier in web\": expected \"(\" after "
                                       "\"in\""));
  EXPECT_EQ(ResolveError("deploy/backend", "demo", "app=backend,tier<3"),
            absl::InvalidArgumentError(
                "label selector \"app=backend,tier<3\": \"tier<3\": expected an operator (=, ==, "
                "!=, in, notin) after \"tier\", found \"<3\""));
  // A malformed selector is reported even when the target does not exist.
  EXPECT_EQ(ResolveError("deploy/nope", "shop", "a=b,,c"),
            absl::InvalidArgumentError("label selector \"a=b,,c\": requirement 2 is empty"));
}

// Label selectors on their own: parsing and Kubernetes' matching rules.
TEST(LabelSelectorTest, ParsesAndMatchesLikeKubectl) {
  const LabelSet web = {{"app", "web"}, {"tier", "front"}};
  const LabelSet bare = {};
  struct Case {
    const char* text;
    bool web, bare;
  };
  const Case cases[] = {
      {"", true, true},
      {"   ", true, true},
      {"app=web", true, false},
      {"app==web", true, false},
      {"app!=web", false, true},  // != holds without the label
      {"app!=db", true, true},
      {"app in (db, web)", true, false},
      {"app in(web)", true, false},
      {"app notin (web)", false, true},  // notin holds without the label
      {"app notin (db)", true, true},
      {"app", true, false},
      {"!app", false, true},
      {"app=web,tier=front", true, false},
      {"app=web,tier=back", false, false},
      {"app in (web,db),!missing", true, false},
      {"app=", false, false},  // an empty value is a value
      {"example.com/team", false, false},
  };
  for (const Case& c : cases) {
    absl::StatusOr<LabelSelector> s = LabelSelector::Parse(c.text);
    ASSERT_TRUE(s.ok()) << c.text << ": " << s.status();
    EXPECT_EQ(s->Matches(web), c.web) << c.text;
    EXPECT_EQ(s->Matches(bare), c.bare) << c.text;
  }
  EXPECT_TRUE(LabelSelector::Parse("app=")->Matches({{"app", ""}}));
  EXPECT_TRUE(LabelSelector::Parse("example.com/team")->Matches({{"example.com/team", "x"}}));
}

TEST(LabelSelectorTest, MalformedSelectorsNameTheOffendingPart) {
  const std::pair<const char*, const char*> cases[] = {
      {"a=b,,c", "label selector \"a=b,,c\": requirement 2 is empty"},
      {"a=b,", "label selector \"a=b,\": requirement 2 is empty"},
      {"=x", "label selector \"=x\": expected a label key, found \"=x\""},
      {"!", "label selector \"!\": expected a label key after \"!\""},
      {"app in (a,b", "label selector \"app in (a,b\": \"(\" without \")\""},
      {"app in a,b)", "label selector \"app in a,b)\": \")\" without \"(\""},
      {"app in ((a))", "label selector \"app in ((a))\": nested \"(\""},
      {"app in ()", "label selector \"app in ()\": the set of values after \"in\" is empty"},
      {"app notin (a) x",
       "label selector \"app notin (a) x\": expected \")\" at the end of "
       "\"(a) x\""},
      {"app inn (a)",
       "label selector \"app inn (a)\": expected an operator (=, ==, !=, in, "
       "notin) after \"app\", found \"inn (a)\""},
      {"app=hello world",
       "label selector \"app=hello world\": label value \"hello world\" may "
       "hold only letters, digits, '-', '_' and '.'"},
      {"x,app=-a",
       "label selector \"x,app=-a\": \"app=-a\": label value \"-a\" must begin and "
       "end with a letter or digit"},
      {"Bad_Prefix/key",
       "label selector \"Bad_Prefix/key\": label key \"Bad_Prefix/key\" has a "
       "prefix that is not a DNS subdomain (lowercase letters, digits, '-', "
       "'.')"},
  };
  for (const auto& [text, message] : cases) {
    EXPECT_EQ(LabelSelector::Parse(text).status(), absl::InvalidArgumentError(message)) << text;
  }
}

TEST(LabelSyntaxTest, KeysAndValues) {
  EXPECT_TRUE(CheckLabelKey("app").ok());
  EXPECT_TRUE(CheckLabelKey("app.kubernetes.io/name").ok());
  EXPECT_TRUE(CheckLabelKey("a_b-c.d").ok());
  EXPECT_FALSE(CheckLabelKey("").ok());
  EXPECT_FALSE(CheckLabelKey("example.com/").ok());
  EXPECT_FALSE(CheckLabelKey("/name").ok());
  EXPECT_FALSE(CheckLabelKey("-app").ok());
  EXPECT_FALSE(CheckLabelKey(std::string(64, 'a')).ok());
  EXPECT_TRUE(CheckLabelKey(std::string(63, 'a')).ok());
  EXPECT_TRUE(CheckLabelValue("").ok());
  EXPECT_TRUE(CheckLabelValue("v1.2_rc-3").ok());
  EXPECT_FALSE(CheckLabelValue("a b").ok());
  EXPECT_TRUE(IsDnsLabel("demo-1"));
  EXPECT_FALSE(IsDnsLabel("Demo"));
  EXPECT_FALSE(IsDnsLabel("a.b"));
  EXPECT_TRUE(IsDnsSubdomain("backend.v2"));
  EXPECT_FALSE(IsDnsSubdomain("backend..v2"));
}

TEST(ParseTargetTest, TypesAndNames) {
  absl::StatusOr<TargetRef> ref = ParseTarget("Deploy/backend");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->type, ResourceType::kDeployment);
  EXPECT_EQ(ref->name, "backend");
  ref = ParseTarget("svc");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->type, ResourceType::kService);
  EXPECT_EQ(ref->name, "");
  EXPECT_EQ(ResourceTypeName(ResourceType::kCronJob), "cronjob");
  EXPECT_TRUE(absl::IsInvalidArgument(ParseTarget("pod-x").status()));
}

// ---- Parsing: inline inventories, each error message checked to the character. ----

absl::Status ParseError(const std::string& yaml) {
  return Inventory::Parse(yaml, "inv.yaml").status();
}

// Three items of a List in a one-document file: "item 3", the line of the podIP value.
TEST(InventoryParseTest, BadPodIpNamesFileLineItemAndField) {
  const std::string yaml =
      "kind: List\n"                                      // 1
      "items:\n"                                          // 2
      "- {kind: Namespace, metadata: {name: demo}}\n"     // 3
      "- kind: ConfigMap\n"                               // 4
      "  metadata: {name: settings, namespace: demo}\n"   // 5
      "- kind: Pod\n"                                     // 6
      "  metadata: {name: backend-1, namespace: demo}\n"  // 7
      "  status:\n"                                       // 8
      "    podIP: abc\n";                                 // 9
  EXPECT_EQ(ParseError(yaml),
            absl::InvalidArgumentError("inv.yaml:9: item 3 (Pod demo/backend-1): status.podIP "
                                       "\"abc\" is not an IP address"));
}

TEST(InventoryParseTest, MalformedYamlGivesFileAndLine) {
  const std::string yaml =
      "kind: Pod\n"            // 1
      "metadata:\n"            // 2
      "  name: x\n"            // 3
      "  labels: {app: web\n"  // 4: the flow mapping is never closed...
      "status:\n"              // 5: ...which yaml-cpp finds at this ':' (column 7)
      "  podIP: 127.0.0.1\n";  // 6
  EXPECT_EQ(ParseError(yaml),
            absl::InvalidArgumentError("inv.yaml:5:7: invalid YAML: end of map flow not found"));
  // A tab where YAML wants spaces: line 3, at the ':' after "\tname" (column 6).
  EXPECT_EQ(ParseError("kind: Pod\nmetadata:\n\tname: x\n"),
            absl::InvalidArgumentError("inv.yaml:3:6: invalid YAML: illegal map value"));
}

TEST(InventoryParseTest, DuplicatePodIpIsRejected) {
  const std::string yaml =
      "kind: Pod\n"                               // 1
      "metadata: {name: a, namespace: demo}\n"    // 2
      "status: {podIP: 127.0.0.5}\n"              // 3
      "---\n"                                     // 4
      "kind: Pod\n"                               // 5
      "metadata: {name: b, namespace: other}\n"   // 6
      "status: {podIP: \"::ffff:127.0.0.5\"}\n";  // 7: the same address
  EXPECT_EQ(ParseError(yaml),
            absl::InvalidArgumentError("inv.yaml:7: document 2 (Pod other/b): status.podIP "
                                       "\"::ffff:127.0.0.5\" is already the address of Pod "
                                       "demo/a (line 3)"));
}

TEST(InventoryParseTest, DuplicateNamesWithinKindAndNamespaceAreRejected) {
  const std::string yaml =
      "kind: List\n"                                      // 1
      "items:\n"                                          // 2
      "- kind: Deployment\n"                              // 3
      "  metadata: {name: web, namespace: demo}\n"        // 4
      "  spec: {selector: {matchLabels: {app: web}}}\n"   // 5
      "- kind: StatefulSet\n"                             // 6
      "  metadata: {name: web, namespace: demo}\n"        // 7: fine
      "  spec: {selector: {matchLabels: {app: web}}}\n"   // 8
      "- kind: Deployment\n"                              // 9
      "  metadata: {name: web, namespace: other}\n"       // 10: fine
      "  spec: {selector: {matchLabels: {app: web}}}\n"   // 11
      "- kind: Deployment\n"                              // 12
      "  metadata:\n"                                     // 13
      "    namespace: demo\n"                             // 14
      "    name: web\n"                                   // 15
      "  spec: {selector: {matchLabels: {app: web}}}\n";  // 16
  EXPECT_EQ(ParseError(yaml),
            absl::InvalidArgumentError("inv.yaml:15: item 4 (Deployment demo/web): "
                                       "metadata.name: Deployment \"web\" is already defined in "
                                       "namespace \"demo\" at line 4"));
  EXPECT_EQ(ParseError("kind: Namespace\nmetadata: {name: demo}\n---\n"
                       "kind: Namespace\nmetadata: {name: demo}\n"),
            absl::InvalidArgumentError("inv.yaml:5: document 2 (Namespace demo): metadata.name: "
                                       "Namespace \"demo\" is already defined at line 2"));
}

// Lists, multi-document files and both at once give the same inventory.
TEST(InventoryParseTest, ListAndMultiDocumentFilesBothWork) {
  const std::string deploy =
      "kind: Deployment\n"
      "metadata: {name: web, namespace: shop}\n"
      "spec: {selector: {matchLabels: {app: web}}}\n";
  const std::string pod =
      "kind: Pod\n"
      "metadata: {name: web-1, namespace: shop, labels: {app: web}}\n"
      "status: {podIP: 127.0.3.1}\n";
  auto indent = [](const std::string& object) {
    std::string out = "- ";
    for (size_t i = 0; i < object.size(); ++i) {
      out += object[i];
      if (object[i] == '\n' && i + 1 < object.size()) out += "  ";
    }
    return out;
  };
  const std::string list = "apiVersion: v1\nkind: List\nitems:\n" + indent(deploy) + indent(pod);
  const std::string multi = deploy + "---\n" + pod;
  const std::string mixed = "---\n" + pod + "---\nkind: List\nitems:\n" + indent(deploy) + "---\n";
  for (const std::string& yaml : {list, multi, mixed}) {
    absl::StatusOr<Inventory> inv = Inventory::Parse(yaml, "inv.yaml");
    ASSERT_TRUE(inv.ok()) << inv.status() << "\n" << yaml;
    EXPECT_THAT(inv->Namespaces(), ElementsAre("shop"));
    absl::StatusOr<std::vector<PodInfo>> pods = inv->Resolve("deploy/web", "shop", "");
    ASSERT_TRUE(pods.ok()) << pods.status();
    ASSERT_EQ(pods->size(), 1u);
    EXPECT_EQ((*pods)[0].name, "web-1");
    EXPECT_EQ((*pods)[0].ip, "127.0.3.1");
    EXPECT_EQ((*pods)[0].workload_kind, "deployment");
  }
}

// In a file of several documents, an item of a List is "document D, item I".
TEST(InventoryParseTest, ItemOfAListInAMultiDocumentFile) {
  const std::string yaml =
      "kind: Namespace\n"                             // 1
      "metadata: {name: demo}\n"                      // 2
      "---\n"                                         // 3
      "kind: List\n"                                  // 4
      "items:\n"                                      // 5
      "- kind: Pod\n"                                 // 6
      "  metadata: {name: ok, namespace: demo}\n"     // 7
      "  status: {podIP: 10.0.0.1}\n"                 // 8
      "- kind: Pod\n"                                 // 9
      "  metadata: {name: no-ip, namespace: demo}\n"  // 10
      "  spec: {containers: []}\n";                   // 11
  EXPECT_EQ(ParseError(yaml),
            absl::InvalidArgumentError("inv.yaml:9: document 2, item 2 (Pod demo/no-ip): "
                                       "status.podIP is missing"));
}

TEST(InventoryParseTest, FieldErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"kind: Pod\nmetadata: {namespace: demo}\nstatus: {podIP: 10.0.0.1}\n",
       "inv.yaml:2: document 1 (Pod): metadata.name is missing"},
      {"metadata: {name: x}\n", "inv.yaml:1: document 1: kind is missing"},
      {"- kind: Pod\n",
       "inv.yaml:1: document 1: expected a Kubernetes object or a List (a "
       "mapping), not a list"},
      {"kind: Pod\nmetadata: {name: Web_1}\nstatus: {podIP: 10.0.0.1}\n",
       "inv.yaml:2: document 1 (Pod default/Web_1): metadata.name \"Web_1\" is not a pod name (up "
       "to 253 lowercase letters, digits, '-' and '.', each dot-separated part beginning and "
       "ending with a letter or digit)"},
      {"kind: Pod\nmetadata: {name: w, labels: {app: a b}}\nstatus: {podIP: 10.0.0.1}\n",
       "inv.yaml:2: document 1 (Pod default/w): metadata.labels[\"app\"]: label value \"a b\" may "
       "hold only letters, digits, '-', '_' and '.'"},
      {"kind: Pod\nmetadata:\n  name: w\n  annotations:\n    tap.tapkit.dev/interface: eth/0\n"
       "status: {podIP: 10.0.0.1}\n",
       "inv.yaml:5: document 1 (Pod default/w): annotation tap.tapkit.dev/interface \"eth/0\" is "
       "not an interface name (1 to 15 characters, no '/', ':' or blanks)"},
      {"kind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n",
       "inv.yaml:3: document 1 (Deployment default/web): spec.selector is missing"},
      {"kind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {}\n",
       "inv.yaml:4: document 1 (DaemonSet default/agent): spec.selector is empty; it must select "
       "pods by matchLabels or matchExpressions"},
      {"kind: Deployment\nmetadata: {name: web}\nspec:\n  selector:\n    matchExpressions:\n"
       "    - {key: app, operator: Equals, values: [web]}\n",
       "inv.yaml:6: document 1 (Deployment default/web): spec.selector.matchExpressions[0]."
       "operator \"Equals\" is not one of In, NotIn, Exists, DoesNotExist"},
      {"kind: Deployment\nmetadata: {name: web}\nspec:\n  selector:\n    matchExpressions:\n"
       "    - {key: app, operator: In}\n",
       "inv.yaml:6: document 1 (Deployment default/web): spec.selector.matchExpressions[0].values "
       "must not be empty for In"},
      {"kind: Service\nmetadata: {name: web}\nspec:\n  ports:\n  - {port: http}\n",
       "inv.yaml:5: document 1 (Service default/web): spec.ports[0].port \"http\" is not a port "
       "number (1 to 65535)"},
      {"kind: Pod\nmetadata:\n  name: w\n  ownerReferences:\n  - {kind: ReplicaSet, name: w-1}\n"
       "status: {podIP: 10.0.0.1}\n",
       "inv.yaml:5: document 1 (Pod default/w): metadata.ownerReferences[0]: ReplicaSet \"w-1\" "
       "not found in namespace \"default\""},
      {"kind: List\nitems:\n- kind: List\n  items: []\n",
       "inv.yaml:3: item 1: a List inside a List is not supported"},
  };
  for (const auto& [yaml, message] : cases) {
    EXPECT_EQ(ParseError(yaml), absl::InvalidArgumentError(message)) << yaml;
  }
}

// A pod without ownerReferences is claimed by the first matching selector: Deployment before
// StatefulSet, then by name; a CronJob by its job template's selector.
TEST(InventoryParseTest, SelectorClaimOrder) {
  const std::string yaml =
      "kind: List\n"
      "items:\n"
      "- kind: StatefulSet\n"
      "  metadata: {name: aaa}\n"
      "  spec: {selector: {matchLabels: {app: web}}}\n"
      "- kind: Deployment\n"
      "  metadata: {name: zzz}\n"
      "  spec: {selector: {matchLabels: {app: web}}}\n"
      "- kind: Deployment\n"
      "  metadata: {name: yyy}\n"
      "  spec: {selector: {matchLabels: {app: web}}}\n"
      "- kind: Deployment\n"
      "  metadata: {name: db}\n"
      "  spec: {selector: {matchLabels: {app: db}}}\n"
      "- kind: ReplicaSet\n"
      "  metadata:\n"
      "    name: db-1\n"
      "    ownerReferences: [{kind: Deployment, name: db}]\n"
      "  spec: {selector: {matchLabels: {app: db, hash: '1'}}}\n"
      "- kind: ReplicaSet\n"
      "  metadata: {name: solo}\n"
      "  spec: {selector: {matchLabels: {app: solo}}}\n"
      "- kind: CronJob\n"
      "  metadata: {name: nightly}\n"
      "  spec: {jobTemplate: {spec: {selector: {matchLabels: {app: nightly}}}}}\n"
      "- {kind: Pod, metadata: {name: web-1, labels: {app: web}}, status: {podIP: 10.0.0.1}}\n"
      "- {kind: Pod, metadata: {name: solo-1, labels: {app: solo}}, status: {podIP: 10.0.0.2}}\n"
      "- {kind: Pod, metadata: {name: other, labels: {app: other}}, status: {podIP: 10.0.0.3}}\n"
      "- {kind: Pod, metadata: {name: n-1, labels: {app: nightly}}, status: {podIP: 10.0.0.4}}\n"
      "- {kind: Pod, metadata: {name: db-x, labels: {app: db, hash: '1'}}, status: {podIP: "
      "10.0.0.5}}\n";
  absl::StatusOr<Inventory> inv = Inventory::Parse(yaml, "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->PodByIp("10.0.0.1")->workload_kind, "deployment");
  EXPECT_EQ(inv->PodByIp("10.0.0.1")->workload_name, "yyy");
  EXPECT_EQ(inv->PodByIp("10.0.0.2")->workload_kind, "replicaset");
  EXPECT_EQ(inv->PodByIp("10.0.0.2")->workload_name, "solo");
  EXPECT_EQ(inv->PodByIp("10.0.0.3")->workload_kind, "");
  EXPECT_EQ(inv->PodByIp("10.0.0.4")->workload_kind, "cronjob");  // by spec.jobTemplate's selector
  EXPECT_EQ(inv->PodByIp("10.0.0.4")->workload_name, "nightly");
  // Deployment db claims db-x before its ReplicaSet db-1 can: the chain is the deployment alone,
  // so rs/db-1 (which owns no pod by ownerReferences) has no pods.
  EXPECT_EQ(inv->PodByIp("10.0.0.5")->workload_name, "db");
  EXPECT_EQ(inv->Resolve("rs/db-1", "", "").status(),
            absl::NotFoundError("target \"rs/db-1\" in namespace \"default\" has no pods"));
  // The statefulset claims nothing: the deployment took the pod.
  EXPECT_EQ(inv->Resolve("sts/aaa", "", "").status(),
            absl::NotFoundError("target \"sts/aaa\" in namespace \"default\" has no pods"));
  EXPECT_EQ(inv->Resolve("svc", "", "").status(),
            absl::NotFoundError("target \"svc\" in namespace \"default\" has no pods (namespace "
                                "\"default\" has no services)"));
}

TEST(InventoryParseTest, ServiceWithoutSelectorHasNoPods) {
  absl::StatusOr<Inventory> inv = Inventory::Parse(
      "kind: Service\nmetadata: {name: external}\nspec: {ports: [{port: 443}]}\n", "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Resolve("svc/external", "", "").status(),
            absl::NotFoundError("target \"svc/external\" in namespace \"default\" has no pods "
                                "(service \"external\" has no selector)"));
}

TEST(InventoryParseTest, EmptyInventory) {
  absl::StatusOr<Inventory> inv = Inventory::Parse("# nothing yet\n", "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_THAT(inv->Namespaces(), IsEmpty());
  EXPECT_EQ(inv->Resolve("po", "", "").status(),
            absl::NotFoundError("namespace \"default\" not found; the inventory has no "
                                "namespaces"));
}

TEST(InventoryLoadTest, UnreadableFiles) {
  absl::Status s = Inventory::Load("/nonexistent/inv.yaml").status();
  EXPECT_EQ(s, absl::NotFoundError(
                   "cannot open inventory /nonexistent/inv.yaml: No such file or directory"));
  s = Inventory::Load(std::string(TAPKIT_SOURCE_DIR) + "/controlplane/testdata").status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("Is a directory"));
}

// A long list of names stops after 20.
TEST(InventoryParseTest, LongNameListsAreCut) {
  std::string yaml = "kind: List\nitems:\n";
  for (int i = 0; i < 25; ++i) {
    yaml += "- {kind: Pod, metadata: {name: p" + std::string(i < 10 ? "0" : "") +
            std::to_string(i) + "}, status: {podIP: 10.0.1." + std::to_string(i + 1) + "}}\n";
  }
  absl::StatusOr<Inventory> inv = Inventory::Parse(yaml, "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Resolve("po/p99", "", "").status(),
            absl::NotFoundError("pod \"p99\" not found in namespace \"default\"; pods there: p00, "
                                "p01, p02, p03, p04, p05, p06, p07, p08, p09, p10, p11, p12, p13, "
                                "p14, p15, p16, p17, p18, p19 and 5 more"));
}

}  // namespace
}  // namespace tapkit
