/// kvwarm's version, also used for the .deb.
public enum KVWarmVersion {
    public static let string = "0.1.0"
}
