use super::*;

fn read(
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, Option<String>)> {
    let h: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    calls(&AwsRequest {
        method,
        host,
        target,
        headers: &h,
        body: Some(body),
    })
    .into_iter()
    .map(|c| (c.service, c.action))
    .collect()
}

fn call(service: &str, action: &str) -> (String, Option<String>) {
    (service.to_string(), Some(action.to_string()))
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded; charset=utf-8");

#[test]
fn query_protocol_action_in_the_url_and_the_form_are_both_readings() {
    assert_eq!(
        read(
            "GET",
            "ec2.us-east-1.amazonaws.com",
            "/?Action=DescribeInstances&Version=2016-11-15",
            &[],
            b""
        ),
        [call("ec2", "DescribeInstances")]
    );
    assert_eq!(
        read(
            "POST",
            "ec2.us-east-1.amazonaws.com",
            "/?Action=DescribeInstances",
            &[FORM],
            b"Action=TerminateInstances&InstanceId.1=i-1"
        ),
        [call("ec2", "DescribeInstances"), call("ec2", "TerminateInstances")]
    );
    // A form action counts only when the body is declared a form (AWS reads it so).
    assert_eq!(
        read("POST", "iam.amazonaws.com", "/", &[], b"Action=DeleteUser"),
        [("iam".to_string(), None)]
    );
}

#[test]
fn json_protocol_target() {
    assert_eq!(
        read(
            "POST",
            "dynamodb.eu-west-1.amazonaws.com",
            "/",
            &[("x-amz-target", "DynamoDB_20120810.DeleteTable")],
            br#"{"TableName":"t"}"#
        ),
        [call("dynamodb", "DeleteTable")]
    );
}

#[test]
fn the_signature_scope_is_a_reading_of_the_service_too() {
    let auth =
        "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";
    // A local endpoint: only the scope names the service.
    assert_eq!(
        read(
            "POST",
            "localhost",
            "/",
            &[
                ("authorization", auth),
                ("x-amz-target", "DynamoDB_20120810.ListTables")
            ],
            b"{}"
        ),
        [call("dynamodb", "ListTables")]
    );
    // Host and scope disagree: both.
    assert_eq!(
        read(
            "GET",
            "ec2.us-east-1.amazonaws.com",
            "/?Action=X",
            &[("authorization", auth)],
            b""
        ),
        [call("ec2", "X"), call("dynamodb", "X")]
    );
}

#[test]
fn s3_actions_are_named_as_iam_names_them() {
    let s3 = |m: &str, host: &str, t: &str, h: &[(&str, &str)]| read(m, host, t, h, b"");
    assert_eq!(
        s3("GET", "s3.amazonaws.com", "/", &[]),
        [call("s3", "ListAllMyBuckets")]
    );
    assert_eq!(
        s3("GET", "s3.us-east-1.amazonaws.com", "/b/k/x.txt", &[]),
        [call("s3", "GetObject")]
    );
    assert_eq!(
        s3("GET", "b.s3.us-east-1.amazonaws.com", "/k", &[]),
        [call("s3", "GetObject")]
    );
    assert_eq!(
        s3("GET", "b.s3.amazonaws.com", "/?list-type=2&prefix=a", &[]),
        [call("s3", "ListBucket")]
    );
    assert_eq!(s3("PUT", "b.s3.amazonaws.com", "/k", &[]), [call("s3", "PutObject")]);
    assert_eq!(
        s3("DELETE", "b.s3.amazonaws.com", "/k", &[]),
        [call("s3", "DeleteObject")]
    );
    assert_eq!(
        s3("POST", "b.s3.amazonaws.com", "/?delete", &[]),
        [call("s3", "DeleteObject")]
    );
    assert_eq!(
        s3("DELETE", "s3.amazonaws.com", "/b", &[]),
        [call("s3", "DeleteBucket")]
    );
    assert_eq!(
        s3("PUT", "s3.amazonaws.com", "/b?policy", &[]),
        [call("s3", "PutBucketPolicy")]
    );
    assert_eq!(
        s3("PUT", "s3.amazonaws.com", "/b/k", &[("x-amz-copy-source", "/other/k")]),
        [call("s3", "PutObject"), call("s3", "GetObject")]
    );
    assert_eq!(
        s3("GET", "s3.amazonaws.com", "/b/k?torrentish", &[]),
        [("s3".to_string(), None)]
    );
    assert_eq!(
        s3("DELETE", "s3.amazonaws.com", "/b/k?versionId=3", &[]),
        [call("s3", "DeleteObjectVersion"), call("s3", "DeleteObject")]
    );
}

#[test]
fn not_aws_is_no_call() {
    assert!(read("GET", "api.example.com", "/?Action=DeleteEverything", &[], b"").is_empty());
}

#[test]
fn the_card_sees_region_and_resource() {
    let h: Vec<(&str, &[u8])> = vec![("x-amz-target", b"DynamoDB_20120810.DeleteTable")];
    let c = calls(&AwsRequest {
        method: "POST",
        host: "dynamodb.eu-west-1.amazonaws.com",
        target: "/",
        headers: &h,
        body: Some(br#"{"TableName":"orders"}"#),
    });
    assert_eq!(c[0].region.as_deref(), Some("eu-west-1"));
    assert_eq!(c[0].resource.as_deref(), Some("orders"));
    assert_eq!(c[0].as_jsonrpc().method, "aws:dynamodb");
}
