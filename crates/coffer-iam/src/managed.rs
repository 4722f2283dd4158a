//! AWS managed policies, available in every account under `arn:aws:iam::aws:policy/NAME`.
//! Documents are AWS's current default versions (see ../shared/reference/aws-behavior.md §4.5 and
//! the AWS Managed Policy Reference), except `ReadOnlyAccess`, whose real document lists hundreds
//! of services: Coffer keeps only the statements about the services it serves (docs/COMPATIBILITY.md).

pub struct AwsManagedPolicy {
    pub name: &'static str,
    pub id: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    /// Creation and last update, epoch seconds.
    pub created: i64,
    pub updated: i64,
    pub document: &'static str,
}

impl AwsManagedPolicy {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy/{}", self.name)
    }
}

pub const AWS_MANAGED: &[AwsManagedPolicy] = &[
    AwsManagedPolicy {
        name: "AdministratorAccess",
        id: "ANPAIWMBCKSKIEE64ZLYK",
        version: "v1",
        description: "Provides full access to AWS services and resources.",
        created: 1423243964,
        updated: 1423243964,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "AmazonS3FullAccess",
        id: "ANPAIFIR6V6BVTRAHWINE",
        version: "v2",
        description: "Provides full access to all buckets via the AWS Management Console.",
        created: 1423243964,
        updated: 1632762232,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","s3-object-lambda:*"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "AmazonS3ReadOnlyAccess",
        id: "ANPAIZTJ4DXE7G6AGAE6M",
        version: "v3",
        description: "Provides read only access to all buckets via the AWS Management Console.",
        created: 1423243964,
        updated: 1691679600,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:Get*","s3:List*","s3:Describe*","s3-object-lambda:Get*","s3-object-lambda:List*"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "ReadOnlyAccess",
        id: "ANPAILL3HVNFSB6DCOWYQ",
        version: "v1",
        description: "Provides read-only access to AWS services and resources.",
        created: 1423243964,
        updated: 1423243964,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:Generate*","iam:Get*","iam:List*","iam:Simulate*","kms:Describe*","kms:Get*","kms:List*","s3:Describe*","s3:Get*","s3:List*","sts:GetAccessKeyInfo","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "IAMFullAccess",
        id: "ANPAI7XKCFMBPM3QQRRVQ",
        version: "v2",
        description: "Provides full access to IAM via the AWS Management Console.",
        created: 1423243964,
        updated: 1561146000,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","organizations:DescribeAccount","organizations:DescribeOrganization","organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","organizations:ListChildren","organizations:ListParents","organizations:ListPoliciesForTarget","organizations:ListRoots","organizations:ListPolicies","organizations:ListTargetsForPolicy"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "IAMReadOnlyAccess",
        id: "ANPAJKSO7NDY4T57MWDSQ",
        version: "v4",
        description: "Provides read only access to IAM via the AWS Management Console.",
        created: 1423243964,
        updated: 1516907460,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:GenerateCredentialReport","iam:GenerateServiceLastAccessedDetails","iam:Get*","iam:List*","iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "IAMUserChangePassword",
        id: "ANPAJ4L4MM2A7QIEB56MS",
        version: "v2",
        description: "Provides the ability for an IAM user to change their own password.",
        created: 1479169516,
        updated: 1479251935,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:ChangePassword"],"Resource":["arn:aws:iam::*:user/${aws:username}"]},{"Effect":"Allow","Action":["iam:GetAccountPasswordPolicy"],"Resource":"*"}]}"#,
    },
    AwsManagedPolicy {
        name: "AWSKeyManagementServicePowerUser",
        id: "ANPAJNPP7PPPPMJRV2SA4",
        version: "v2",
        description: "Provides access to AWS Key Management Service (KMS).",
        created: 1423243964,
        updated: 1488902400,
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:CreateAlias","kms:CreateKey","kms:DeleteAlias","kms:Describe*","kms:GenerateRandom","kms:Get*","kms:List*","kms:TagResource","kms:UntagResource","iam:ListGroups","iam:ListRoles","iam:ListUsers"],"Resource":"*"}]}"#,
    },
];

/// Looks up an AWS managed policy by ARN.
pub fn by_arn(arn: &str) -> Option<&'static AwsManagedPolicy> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    AWS_MANAGED.iter().find(|p| p.name == name)
}
